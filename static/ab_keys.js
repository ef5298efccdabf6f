// The blind A/B test's keys (app/ab_tab.py): ← or 1 left, → or 2 right, ↓ or 0 about the same.
// Only while a pair is on screen and no text field, list or slider has the keyboard.
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target && target.closest && target.closest("input, textarea, select, [contenteditable='true']")) return;
  const image = document.querySelector("#ab-pair img");
  if (!image || !image.offsetParent) return;
  const id = {ArrowLeft: "ab-left", 1: "ab-left", ArrowRight: "ab-right", 2: "ab-right",
              ArrowDown: "ab-same", 0: "ab-same"}[event.key];
  const button = id && document.getElementById(id);
  if (!button) return;
  event.preventDefault();
  (button.tagName === "BUTTON" ? button : button.querySelector("button") || button).click();
});
