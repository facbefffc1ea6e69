// A virtualised list: fixed-height rows, a spacer as tall as all of them, and only the
// rows in view (plus a margin) in the DOM, redrawn at most once per animation frame. It
// follows the tail while scrolled to the bottom, like a terminal. 5,000 events cost ~40
// row elements.

import { h } from "../dom.js";

export function virtualList({ rowHeight, renderRow, label, emptyText = "Nothing yet.", maxRows = 12 }) {
  const spacer = h("div", { class: "vlist-spacer" });
  const none = h("p", { class: "empty vlist-empty" }, emptyText);
  const viewport = h("div", { class: "vlist", tabindex: 0, role: "list", "aria-label": label }, spacer, none);
  let items = [];
  let selected = -1;
  let follow = true;
  let scheduled = false;

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(draw);
  }

  function draw() {
    scheduled = false;
    none.hidden = items.length > 0;
    spacer.style.height = `${items.length * rowHeight}px`;
    // As tall as its rows, up to maxRows (then it scrolls); CSSOM, so the CSP allows it.
    viewport.style.height = `${Math.max(3, Math.min(items.length, maxRows)) * rowHeight + 2}px`;
    if (follow) viewport.scrollTop = viewport.scrollHeight;
    const top = viewport.scrollTop;
    const height = viewport.clientHeight || 400;
    const first = Math.max(0, Math.floor(top / rowHeight) - 8);
    const last = Math.min(items.length, Math.ceil((top + height) / rowHeight) + 8);
    const rows = [];
    for (let index = first; index < last; index++) {
      const row = renderRow(items[index], index);
      row.classList.add("vrow");
      if (index === selected) row.classList.add("selected");
      row.setAttribute("role", "listitem");
      row.style.transform = `translateY(${index * rowHeight}px)`;
      rows.push(row);
    }
    spacer.replaceChildren(...rows);
  }

  viewport.addEventListener("scroll", () => {
    follow = viewport.scrollTop + viewport.clientHeight >= viewport.scrollHeight - rowHeight / 2;
    schedule();
  });

  return {
    el: viewport,
    setItems(next) {
      items = next;
      schedule();
    },
    itemsChanged: schedule, // the caller pushed onto the array it passed
    select(index, reveal = true) {
      selected = index;
      if (reveal && index >= 0) {
        const top = index * rowHeight;
        if (top < viewport.scrollTop || top > viewport.scrollTop + viewport.clientHeight - rowHeight) {
          viewport.scrollTop = Math.max(0, top - viewport.clientHeight / 2);
          follow = false;
        }
      }
      schedule();
    },
    get length() {
      return items.length;
    },
  };
}
