// Attachments (docs/ATTACHMENTS.md): the wasm package hashes the file, uploads it to the
// conversation in resumable chunks (progress after each chunk the server acknowledged) and
// gives the attachment reference, which goes out as a message. An upload cut short by a
// reload is kept with its file in IndexedDB: `resumeFiles` finishes and sends it when the
// page comes back. Images are shown by their thumbnail, fetched with the token (an <img>
// cannot send one) and kept as object URLs.
import { demoToken } from "./api.js";

async function token(session) {
  return (await demoToken(session.account)).token;
}

function kindOf(mime) {
  return mime?.startsWith("image/") ? "image" : "file";
}

/** Uploads `file` to `conv` through the client; `onProgress(fraction)` after each chunk.
 * Resolves the attachment reference; rejects with the server's `code` (ConfabError). */
export function upload(session, conv, file, onProgress) {
  return session.client.uploadAttachment(conv, file, {
    name: file.name.slice(0, 255),
    kind: kindOf(file.type),
    onProgress: ({ sent, size }) => onProgress(sent / size),
  });
}

/** Uploads and sends `file` as an image or file message. */
export async function sendFile(session, conv, file, onProgress) {
  const attachment = await upload(session, conv, file, onProgress);
  return session.client.send(conv, { kind: attachment.kind, attachments: [attachment] });
}

/** Finishes the uploads a reload cut short and sends each as its message; failures stay
 * quiet (one that may pass later stays pending for the next start). */
export async function resumeFiles(session) {
  const { client } = session;
  if ((await client.pendingUploads()).length === 0) return;
  for (const done of await client.resumeUploads()) {
    if (done.attachment) {
      await client.send(done.conv, { kind: done.attachment.kind, attachments: [done.attachment] }).catch(() => {});
    }
  }
}

/** The server path of an attachment URL naming a blob of this server, or undefined. */
export function blobPath(url) {
  try {
    const path = new URL(url).pathname;
    return /^\/v1\/conversations\/[^/]+\/attachments\/[0-9a-f]{64}$/.test(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

const fetched = new Map();

/** An object URL of `path` fetched with a token (memoized: content-addressed, never changes). */
export function objectUrl(session, path) {
  if (!fetched.has(path)) {
    fetched.set(
      path,
      (async () => {
        const res = await fetch(path, { headers: { Authorization: `Bearer ${await token(session)}` } });
        if (!res.ok) throw new Error(`${path} answered ${res.status}`);
        return URL.createObjectURL(await res.blob());
      })().catch((e) => {
        fetched.delete(path);
        throw e;
      }),
    );
  }
  return fetched.get(path);
}
