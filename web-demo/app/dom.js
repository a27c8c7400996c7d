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
      title: allowed ? attrs.title : `Not allowed: ${verdict.reason} (${verdict.code})`,
      dataset: { ...(attrs.dataset ?? {}), code: allowed ? undefined : verdict.code },
      onclick,
    },
    label,
  );
}

/** A short-lived notice in the corner. */
export function toast(text, kind = "info") {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}` }, text);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 7000 : 3500);
}
