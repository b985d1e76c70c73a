// Downsizing an image in the browser before it is sealed and sent: the longest side to
// about MAX_SIDE px, re-encoded as JPEG (WebP where the browser writes it and the image has
// transparency). The size computation is pure (targetSize) and tested in node; the drawing needs a
// real canvas (createImageBitmap + OffscreenCanvas or <canvas>), which the Chromium test checks.

export const MAX_SIDE = 1024;
export const QUALITY = 0.85;

/** The size to draw at: the longest side at most `max`, the aspect kept, never enlarged, at least 1 px. */
export function targetSize(width, height, max = MAX_SIDE) {
  if (!(width > 0) || !(height > 0)) throw new RangeError("an image needs a width and a height");
  const scale = Math.min(1, max / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)), scaled: scale < 1 };
}

/** "photo.heic" -> "photo.jpg": the name the re-encoded file goes by. */
export function renamed(name, type) {
  const ext = type === "image/webp" ? "webp" : type === "image/png" ? "png" : "jpg";
  const base = String(name || "image").replace(/\.[A-Za-z0-9]{1,5}$/, "");
  return `${base || "image"}.${ext}`;
}

/**
 * Downsizes `file` (a Blob) and returns {blob, type, name, width, height}. A small JPEG, PNG or WebP
 * that needs no scaling is kept as it is. Throws an Error named "ImageUnreadable" when the
 * browser cannot decode it (a broken file, a type it does not know).
 */
export async function downsize(file, { max = MAX_SIDE, quality = QUALITY, env = globalThis } = {}) {
  let bitmap;
  try {
    bitmap = await env.createImageBitmap(file);
  } catch (cause) {
    const err = new Error(`${file.name || "The image"} could not be read as an image by this browser.`);
    err.name = "ImageUnreadable";
    err.cause = cause;
    throw err;
  }
  const size = targetSize(bitmap.width, bitmap.height, max);
  const keep = !size.scaled && ["image/jpeg", "image/png", "image/webp"].includes(file.type) && file.size <= 2 * 1024 * 1024;
  if (keep) {
    if (bitmap.close) bitmap.close();
    return { blob: file, type: file.type, name: file.name, width: size.width, height: size.height };
  }
  const canvas = typeof env.OffscreenCanvas === "function"
    ? new env.OffscreenCanvas(size.width, size.height)
    : Object.assign(env.document.createElement("canvas"), { width: size.width, height: size.height });
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; // JPEG has no transparency: white behind it, not black
  ctx.fillRect(0, 0, size.width, size.height);
  ctx.drawImage(bitmap, 0, 0, size.width, size.height);
  if (bitmap.close) bitmap.close();
  const type = "image/jpeg";
  const blob = canvas.convertToBlob
    ? await canvas.convertToBlob({ type, quality })
    : await new Promise((resolve) => canvas.toBlob(resolve, type, quality));
  return { blob, type, name: renamed(file.name, type), width: size.width, height: size.height };
}
