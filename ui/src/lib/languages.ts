/** The English name of an ISO 639-1 code (`es` → `Spanish`), from the browser's CLDR data; the code itself when it has none. */
export function languageName(code: string): string {
  try {
    return new Intl.DisplayNames(['en'], { type: 'language' }).of(code) ?? code;
  } catch {
    return code;
  }
}
