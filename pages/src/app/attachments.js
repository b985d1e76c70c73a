// Attachments: a picked file is read, an image downsized (lib/images.js), and uploaded
// at once, sealed like every request (POST /api/attachments); its chip shows under the message box
// while it uploads, then its name and size, or why the server refused it. Send takes the uploaded
// ones with the message (ChatController asks take()); a refused file never touches the text being
// written. An image for a model that cannot see is not uploaded: the attach button says why.

import { imageAllowed, pickedKind, toBase64 } from "../lib/attachments.js";
import { downsize } from "../lib/images.js";
import { AttachButton } from "../components/chat/AttachButton.js";
import { AttachmentChips } from "../components/chat/AttachmentChips.js";

let counter = 0;

export class AttachmentController {
  /**
   * @param {{form: HTMLFormElement, api: {uploadAttachment: Function, deleteAttachment: Function},
   *          chosenModel: () => object|null, report: (err, context) => string, shrink?: Function}} opts
   *   chosenModel  the picker's entry ({name, label, vision}); null until the list is known
   *   report       the sentence for a failed upload (describe.js, context "attach")
   *   shrink       (file) => {blob, type, name}: the image downsizing (tests pass a stand-in)
   */
  constructor({ form, api, chosenModel, report, shrink = (file) => downsize(file) }) {
    Object.assign(this, { api, chosenModel, report, shrink });
    this.items = [];
    this.button = new AttachButton(form, { onPick: (files) => this.pick(files) });
    this.chips = new AttachmentChips(form, { onRemove: (item) => this.remove(item) }, form.querySelector("textarea"));
    this.modelChanged();
  }

  /** The chosen model changed (or the list arrived): the button says whether images can go. */
  modelChanged() {
    const allowed = imageAllowed(this.chosenModel());
    this.button.setImageHint(allowed.ok ? "" : allowed.text);
  }

  update(item, patch) {
    Object.assign(item, patch);
    this.chips.show(this.items);
  }

  /** Every picked file, uploaded one after the other; resolves when all are done. */
  async pick(files) {
    this.button.say("");
    const work = [];
    for (const file of files) {
      if (pickedKind(file) === "image") {
        const allowed = imageAllowed(this.chosenModel());
        if (!allowed.ok) {
          this.button.say(allowed.text);
          continue;
        }
      }
      const item = { localId: `a${++counter}`, name: file.name, size: file.size, kind: pickedKind(file) === "image" ? "image" : "document", status: "uploading" };
      this.items.push(item);
      work.push({ file, item });
    }
    this.chips.show(this.items);
    for (const { file, item } of work) await this.upload(file, item);
  }

  async upload(file, item) {
    try {
      let blob = file;
      let { name, type } = file;
      if (item.kind === "image") {
        const small = await this.shrink(file);
        ({ blob, name, type } = small);
        this.update(item, { name, size: blob.size });
      }
      const bytes = new Uint8Array(await blob.arrayBuffer());
      const info = await this.api.uploadAttachment({ name, mime: type || "", data: toBase64(bytes) });
      if (!this.items.includes(item)) {  // removed while it uploaded
        this.api.deleteAttachment(info.id).catch(() => {});
        return;
      }
      this.update(item, { ...info, status: "ready", error: null });
    } catch (err) {
      if (this.items.includes(item)) this.update(item, { status: "failed", error: this.report(err, "attach") });
    }
  }

  /** Still uploading: Send waits (the message box keeps its text). */
  uploading() {
    return this.items.some((i) => i.status === "uploading");
  }

  /**
   * The uploaded attachments for the message being sent, and the composer is cleared of them;
   * null while one still uploads (the caller does not send). Refused ones are dropped.
   */
  take() {
    if (this.uploading()) {
      this.button.say("Wait a moment: an attachment is still uploading.");
      return null;
    }
    const ready = this.items.filter((i) => i.status === "ready").map(({ id, name, size, kind, mime, pages }) => ({ id, name, size, kind, mime, pages }));
    this.items = [];
    this.chips.show(this.items);
    this.button.say("");
    return ready;
  }

  /** × on a chip: the server forgets a file not sent yet. */
  remove(item) {
    this.items = this.items.filter((i) => i !== item);
    this.chips.show(this.items);
    if (item.id && item.status === "ready") this.api.deleteAttachment(item.id).catch(() => {});
  }
}
