/**
 * What the console knows of the centre's settings that every view needs: its language (ISO
 * 639-1), which decides which transcript lines are shown with a machine translation (issue 21).
 * Set from `GET /api/settings` at sign-in; null until then or for a user who cannot read them.
 */
export const centre: { language: string | null } = $state({ language: null });
