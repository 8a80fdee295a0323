/**
 * `navigator.language` as a valid BCP 47 tag. WebKitGTK takes it from the process's LC_CTYPE
 * locale: under `C.UTF-8` (Debian's default in containers and minimal installs) it reports
 * `"C"`, which `Intl` refuses ("RangeError: invalid language tag: C"). uPlot builds its number
 * format from `navigator.language` when it loads, so the statistics page failed in the desktop
 * window. Any tag `Intl` refuses is replaced by `en-US` before anything reads it.
 */
export function validLanguage(tag: string | undefined): string | null {
  if (!tag) return 'en-US';
  try {
    new Intl.NumberFormat(tag);
    return null;
  } catch {
    return 'en-US';
  }
}

/** Replaces an invalid `navigator.language` (see [`validLanguage`]); run once at start. */
export function repairNavigatorLanguage(): void {
  const fix = validLanguage(navigator.language);
  if (fix) Object.defineProperty(navigator, 'language', { value: fix, configurable: true });
}
