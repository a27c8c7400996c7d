//! The worked examples of docs/SCHEMA.md are these vectors.

use super::*;

// ---------------------------------------------------------------------------------------
// The worked examples of docs/SCHEMA.md are these vectors
// ---------------------------------------------------------------------------------------

/// A derived id, byte by byte, as docs/SCHEMA.md ("Direct and support ids") shows it.
pub(crate) fn worked_id(prefix: &str, domain: &str, parts: &[(&str, &str)]) -> String {
    let mut lines = vec![format!("{:<36}\"{domain}\"", hex::encode(domain))];
    for (what, part) in parts {
        let len = (part.len() as u64).to_be_bytes();
        lines.push(format!(
            "{:<36}{what}: length {}, \"{part}\"",
            format!("{} {}", hex::encode(len), hex::encode(part)),
            part.len()
        ));
    }
    let raw: Vec<&str> = parts.iter().map(|(_, p)| *p).collect();
    let digest = sha256(&id_preimage(domain, &raw));
    lines.push(format!("SHA-256 = {}", hex::encode(&digest)));
    lines.push(format!("id      = {prefix}{}", hex::encode(&digest[..16])));
    lines.join("\n")
}

pub(crate) fn worked_genesis(id: &DocId) -> String {
    let change = doc::genesis_change(id).unwrap();
    let actor = doc::genesis_actor(id);
    let mut lines = vec![
        format!("document  {id}"),
        format!("actor     {actor}    first 16 bytes of SHA-256(\"confab/genesis/v1\\0{id}\")"),
        "op 1      put schema = 1 (uint) at the root".to_owned(),
    ];
    for (i, path) in doc::genesis_objects(id.kind()).iter().enumerate() {
        lines.push(format!("op {:<7}make_map {}", i + 2, path.join("/")));
    }
    lines.push(format!("hash      {}", change.hash()));
    lines.push(format!(
        "bytes     {} bytes: docs/vectors/genesis.json",
        change.raw_bytes().len()
    ));
    lines.join("\n")
}

/// A change of the vectors, op by op, as docs/SCHEMA.md lists it.
pub(crate) fn worked_change(scenario: &str, step: usize) -> String {
    let file = scenario_vectors();
    let step = file["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == scenario)
        .map(|s| s["steps"][step].clone())
        .unwrap();
    let deps: Vec<&str> = step["deps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let mut lines = vec![
        format!("document  {}", step["doc"].as_str().unwrap()),
        format!("actor     {}", step["actor"].as_str().unwrap()),
        format!(
            "seq {}, start op {}, time {}, message {}",
            step["seq"], step["start_op"], step["time"], step["message"]
        ),
        format!("deps      {}", deps.join(" ")),
    ];
    for op in step["ops"].as_array().unwrap() {
        let counter = op["id"].as_str().unwrap().split('@').next().unwrap();
        let what = match op["action"].as_str().unwrap() {
            "put" => format!("= {} ({})", op["value"], op["type"].as_str().unwrap()),
            other => other.to_owned(),
        };
        lines.push(format!(
            "{counter:>4}  {:<16}{:<24}{what}",
            op["obj"].as_str().unwrap(),
            op["key"].as_str().unwrap()
        ));
    }
    lines.push(format!("hash      {}", step["hash"].as_str().unwrap()));
    lines.join("\n")
}

pub(crate) fn schema_md_examples() -> Vec<String> {
    let lunch = DocId::conv(&acme(), &conv("lunch"));
    vec![
        worked_change("group", 0),
        worked_change("group", 2),
        worked_change("direct", 0),
        worked_id(
            "d-",
            "confab/direct/v1",
            &[
                ("tenant", "acme"),
                ("lower account", "alice"),
                ("higher account", "bob"),
            ],
        ),
        worked_id(
            "s-",
            "confab/support/v1",
            &[
                ("tenant", "acme"),
                ("client", "carol"),
                ("resource", "flat-7"),
            ],
        ),
        worked_genesis(&lunch),
        format!(
            "SHA-256(\"m1\") = {}\nfirst byte 0x{:02x} = {}, mod 64 = {} → messages/{}/m1",
            hex::encode(sha256(b"m1")),
            sha256(b"m1")[0],
            sha256(b"m1")[0],
            sha256(b"m1")[0] % 64,
            schema::message_shard("m1")
        ),
    ]
}

#[test]
pub(crate) fn schema_md_shows_the_vectors() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/SCHEMA.md"),
    )
    .unwrap();
    for example in schema_md_examples() {
        assert!(
            text.contains(&example),
            "docs/SCHEMA.md lacks this worked example (from core):\n{example}"
        );
    }
}

#[test]
#[ignore = "prints the worked examples docs/SCHEMA.md must show"]
pub(crate) fn print_schema_md_examples() {
    for example in schema_md_examples() {
        println!("```text\n{example}\n```\n");
    }
}
