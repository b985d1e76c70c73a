// The page's frame: which screen is shown (data-view on #app: loading, pairing or chat), the
// conversations drawer on phones, the "paired as …" banner and the API origin in the footer.
// Follows the session store's view and apiOrigin.

import { $ } from "../../lib/dom.js";

export class Layout {
  /**
   * @param {HTMLElement} root  #app
   * @param {import("../../lib/session.js").Session} session
   */
  constructor(root, session) {
    this.root = root;
    this.toggle = $("#sidebar-toggle", root);
    this.banner = $("#pair-banner", root);
    this.toggle.addEventListener("click", () => this.setDrawer(!this.drawerOpen));
    $("#scrim", root).addEventListener("click", () => this.setDrawer(false));
    $("#pair-banner-close", root).addEventListener("click", () => (this.banner.hidden = true));
    session.subscribe(["view"], (st) => this.showView(st.view));
    session.subscribe(["apiOrigin"], (st) => ($("#api-origin", root).textContent = st.apiOrigin || ""));
  }

  showView(view) {
    this.root.dataset.view = view;
    $("#pairing-view", this.root).hidden = view !== "pairing";
    $("#chat-view", this.root).hidden = view !== "chat";
    if (view !== "chat") this.setDrawer(false);
  }

  get drawerOpen() {
    return this.root.classList.contains("drawer-open");
  }

  setDrawer(open) {
    this.root.classList.toggle("drawer-open", open);
    this.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) $("#new-conversation", this.root).focus();
  }

  /** "Paired as <name>. Fingerprint: <fingerprint> — check that it matches…" */
  showPairBanner(name, fingerprint) {
    $("#fingerprint", this.root).textContent = fingerprint;
    $("#pair-banner-name", this.root).textContent = name;
    this.banner.hidden = false;
  }
}
