// A tiny element builder: h("button", { class: "primary", onclick }, "Send").
// Attributes named on* become listeners, `dataset` fills data-*, false/null/undefined are
// skipped (so `disabled: !allowed` works), and children may be strings, nodes or arrays.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) el.dataset[k] = v;
    } else if (key === "value" || key === "checked") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Rebuilds `el` with `build()` only when `sig` (what it shows, as a string) changed: a push
 * that changes nothing here keeps its nodes, and with them the focus and an open <select>. */
export function remountIf(el, sig, build) {
  if (shown.get(el) === sig) return false;
  shown.set(el, sig);
  build();
  return true;
}

/** Forgets what `el` shows: the next `remountIf` rebuilds it. */
export function forget(el) {
  shown.delete(el);
}

const shown = new WeakMap();

/** Sets `target[key]` (a property, or a `dataset` entry) unless it holds `value` already:
 * writing the same text or attribute again is still style and layout work. */
export function put(target, key, value) {
  if (target[key] !== value) target[key] = value;
}

/** Makes `els` the children of `el`, in order, touching only what moved: a node that stays
 * is neither removed nor inserted again (its layout, paint, focus and any text selection in
 * it survive). Says whether anything moved. */
export function placeChildren(el, els) {
  const mine = new Set(els);
  let changed = false;
  // Nodes that are no longer wanted (replaced or gone), and anything not ours, leave.
  for (const node of [...el.childNodes]) {
    if (!mine.has(node)) {
      node.remove();
      changed = true;
    }
  }
  let at = el.firstChild;
  for (const node of els) {
    if (node === at) at = at.nextSibling;
    else {
      el.insertBefore(node, at);
      changed = true;
    }
  }
  return changed;
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A button that is disabled, with the policy's reason as its tooltip, when `verdict` says no. */
export function guarded(label, verdict, onclick, attrs = {}) {
  const allowed = verdict?.allowed ?? true;
  return h(
    "button",
    {
      ...attrs,
      disabled: !allowed,
      title: allowed ? attrs.title : verdict.reason,
      dataset: { ...(attrs.dataset ?? {}), code: allowed ? undefined : verdict.code },
      onclick,
    },
    label,
  );
}

/** A short-lived notice at the top: one at a time (a new one replaces the last), never over
 * the composer. Refusals do not come here: they are notes in place (`state.note`). */
export function toast(text, kind = "info") {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}` }, text);
  box.replaceChildren(el);
  setTimeout(() => el.remove(), kind === "error" ? 7000 : 3500);
}

/** A refusal in place: the sentence for people, the code and the technical detail for the
 * curious (title), and a way to put it away. */
export function refusalNote(refusal, onDismiss, attrs = {}) {
  return h(
    "div",
    {
      class: "note",
      role: "alert",
      title: refusal.detail ? `${refusal.detail} (${refusal.code})` : refusal.code,
      dataset: { code: refusal.code },
      ...attrs,
    },
    h("span", { class: "note-text" }, refusal.reason),
    onDismiss && h("button", { class: "link", onclick: onDismiss }, "Dismiss"),
  );
}
