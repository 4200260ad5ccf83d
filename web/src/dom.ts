// Tiny DOM helpers shared by the widget, the dashboard and the demo page.

type Child = Node | string;

/** An element with attributes (`hidden: ""` sets a boolean attribute) and children. */
export function el(tag: string, attributes: Record<string, string> = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

/** Saves `blob` as a file called `name` (an attachment fetched with credentials). */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name }) as HTMLAnchorElement;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A link that downloads an attachment through `fetchBlob` (the URL needs credentials). */
export function attachmentLink(name: string, fetchBlob: () => Promise<Blob>): HTMLElement {
  const link = el("a", { href: "#", class: "file" }, name);
  link.addEventListener("click", (event) => {
    event.preventDefault();
    fetchBlob()
      .then((blob) => saveBlob(blob, name))
      .catch((error) => console.error(error));
  });
  return link;
}

/** A time of day from seconds or milliseconds since the epoch. */
export function formatTime(at: unknown): string {
  const value = Number(at);
  if (!Number.isFinite(value) || value <= 0) return "";
  const date = new Date(value < 1e12 ? value * 1000 : value);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
