"""Renders the committed PNG icons of the page (pages/public/chat/*.png) from SVG with Chromium.

Run once after changing the design: `.venv/bin/python pages/tools/render_icons.py` (from the repo
root). The PNGs are committed, so the page build needs neither Chromium nor ImageMagick.
  icon-192.png, icon-512.png     purpose "any": the rounded square of icon.svg, transparent corners
  icon-maskable-512.png          purpose "maskable": full bleed, the mark inside the central 60 %
  apple-touch-icon.png (180)     full bleed and opaque (iOS rounds the corners itself)
"""

from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parents[1] / "public" / "chat"
BLUE = "#2456c8"
MARK = '<path d="M8 10h16v10H14l-5 4v-4H8z" fill="#fff"/>'

ANY = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="{BLUE}"/>{MARK}</svg>'
# Full bleed; the mark (x 8..24, y 10..24 of 32) scaled by 0.75 about the centre stays inside the
# maskable safe zone (a circle of radius 40 % of the size).
FULL = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" fill="{BLUE}"/>'
        f'<g transform="translate(16 16) scale(0.75) translate(-16 -17)">{MARK}</g></svg>')

ICONS = [("icon-192.png", ANY, 192), ("icon-512.png", ANY, 512),
         ("icon-maskable-512.png", FULL, 512), ("apple-touch-icon.png", FULL, 180)]


def main() -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        for name, svg, size in ICONS:
            page = browser.new_page(viewport={"width": size, "height": size}, device_scale_factor=1)
            sized = svg.replace("<svg ", f'<svg width="{size}" height="{size}" ', 1)
            page.set_content(f'<html><body style="margin:0;background:transparent">{sized}</body></html>')
            page.screenshot(path=str(OUT / name), omit_background=True,
                            clip={"x": 0, "y": 0, "width": size, "height": size})
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
