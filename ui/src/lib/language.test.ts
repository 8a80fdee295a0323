import { describe, expect, it } from 'vitest';
import { validLanguage } from './language';

describe('validLanguage', () => {
  it('keeps a tag Intl takes and replaces one it refuses', () => {
    expect(validLanguage('en-GB')).toBeNull();
    expect(validLanguage('de')).toBeNull();
    expect(validLanguage('C')).toBe('en-US'); // WebKitGTK under LC_CTYPE=C.UTF-8
    expect(validLanguage('')).toBe('en-US');
  });
});
