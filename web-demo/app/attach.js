// Attachments (docs/ATTACHMENTS.md): the file is hashed here, uploaded to the conversation
// over REST with a fresh demo token (progress from the upload's events), then sent as a
// message whose attachment names the blob by its URL. Images are shown by their thumbnail,
// fetched with the token (an <img> cannot send one) and kept as object URLs.
import { demoToken } from "./api.js";

async function token(session) {
  return (await demoToken(session.account)).token;
}

/** SHA-256 of the file, as 64 hex digits. */
async function sha256(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Uploads `file` to `conv`; `onProgress(fraction)` as bytes go out. Resolves the blob. */
export async function upload(session, conv, file, onProgress) {
  const hash = await sha256(file);
  const bearer = await token(session);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `/v1/conversations/${encodeURIComponent(conv)}/attachments/${hash}`);
    xhr.setRequestHeader("Authorization", `Bearer ${bearer}`);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new Error("the upload failed: no connection"));
    xhr.onload = () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON: reported by status below.
      }
      if (xhr.status === 200 || xhr.status === 201) {
        onProgress(1);
        resolve(body);
      } else {
        const error = new Error(body.message ?? `the upload answered ${xhr.status}`);
        error.code = body.code;
        reject(error);
      }
    };
    xhr.send(file);
  });
}

/** Uploads and sends `file` as an image or file message. */
export async function sendFile(session, conv, file, onProgress) {
  const blob = await upload(session, conv, file, onProgress);
  const kind = blob.mime.startsWith("image/") ? "image" : "file";
  return session.client.send(conv, {
    kind,
    attachments: [{ id: "a1", kind, name: file.name.slice(0, 255), mime: blob.mime, size: blob.size, url: blob.url }],
  });
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
