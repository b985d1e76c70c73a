// Attachments, the pure part: what a picked file is, how its chip reads, and what a
// reply says when the model saw only part of a document. No DOM, no fetch: app/attachments.js
// reads files and uploads them, components/chat/AttachmentChips.js shows the chips.

export const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp"];

/** "12 KB", "3.4 MB": the size on a chip. */
export function formatSize(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** "image" for a picture the page downsizes first; "file" for everything else (the server decides). */
export function pickedKind(file) {
  const type = String((file && file.type) || "").toLowerCase();
  if (type.startsWith("image/") && type !== "image/svg+xml") return "image";
  if (!type && /\.(jpe?g|png|webp|gif|heic|avif|bmp)$/i.test(String((file && file.name) || ""))) return "image";
  return "file";
}

/** A chip's line: the name and the size, and the pages of a PDF. */
export function chipText(a) {
  const parts = [formatSize(a.size)];
  if (Number.isInteger(a.pages) && a.pages > 0) parts.push(`${a.pages} page${a.pages === 1 ? "" : "s"}`);
  return { name: String(a.name || "file"), detail: parts.filter(Boolean).join(" · ") };
}

/**
 * Whether the chosen model may be sent an image: {ok} or {ok: false, text} with the sentence the
 * attach button says instead of sending something the model would ignore.
 */
export function imageAllowed(model) {
  if (!model) return { ok: true }; // the list is not known yet: the server decides (image_not_supported)
  if (model.vision) return { ok: true };
  const name = model.label || model.name || "This model";
  return { ok: false, text: `${name} cannot see images, so it would ignore one. Pick a model that can see, or attach a document.` };
}

/**
 * The note under a reply for each document the model saw only part of (a done event's
 * attachments_seen, or a stored reply's): "The model saw the first 12 of 40 pages of report.pdf."
 * `names`: attachment id -> name, for stored replies whose list carries numbers only.
 */
export function seenNotes(seen, names = {}) {
  if (!Array.isArray(seen)) return [];
  const notes = [];
  for (const s of seen) {
    if (!s || s.whole !== false) continue;
    const name = s.name || names[s.id] || "the attached file";
    if (Number.isInteger(s.pages)) {
      notes.push(s.pages_seen > 0
        ? `The model saw the first ${s.pages_seen} of ${s.pages} pages of ${name}: the rest did not fit in its context.`
        : `The model saw only the start of the first page of ${name} (${s.pages} pages): the rest did not fit in its context.`);
    } else if (Number.isInteger(s.lines)) {
      notes.push(`The model saw the first ${s.lines_seen} of ${s.lines} lines of ${name}: the rest did not fit in its context.`);
    }
  }
  return notes;
}

/** Standard base64 of bytes (an ArrayBuffer or Uint8Array), in chunks so large files do not overflow the stack. */
export function toBase64(bytes) {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let binary = "";
  for (let i = 0; i < view.length; i += 0x8000) binary += String.fromCharCode.apply(null, view.subarray(i, i + 0x8000));
  return btoa(binary);
}
