// The statistics page's figures as CSV (issue 19): one row per figure, `section,key,value`,
// the same numbers the page draws (times in ms, hours as ISO 8601 UTC).

import type { Category } from './types/Category';
import type { Figures } from './types/Figures';
import type { LevelCounts } from './types/LevelCounts';

/** A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180). */
function field(v: string | number | null): string {
  const s = v === null ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The compliance levels, best first. */
export const LEVELS: (keyof LevelCounts)[] = ['high', 'partial', 'low', 'non_compliant'];

/** A protocol category's words (IAED-style categories, `crates/qa` `Category`). */
export const CATEGORY_TEXT: Record<Category, string> = { case_entry: 'Case entry', key_questions: 'Key questions', instructions: 'Instructions', final_code: 'Final code', customer_service: 'Customer service' };

/** The figures of a period as CSV text with a header row. */
export function figuresCsv(f: Figures): string {
  const rows: [string, string, string | number | null][] = [
    ['period', 'from', new Date(f.from_ms).toISOString()],
    ['period', 'to', new Date(f.to_ms).toISOString()],
    ['calls', 'ended', f.calls],
  ];
  for (const [hour, n] of f.calls_per_hour) rows.push(['calls_per_hour', new Date(hour).toISOString(), n]);
  const d = f.answer_to_dispatch_ms;
  rows.push(['answer_to_dispatch_ms', 'count', d.count], ['answer_to_dispatch_ms', 'p50', d.p50], ['answer_to_dispatch_ms', 'p90', d.p90]);
  for (const [bin, n] of d.histogram) rows.push(['answer_to_dispatch_histogram', `${bin}`, n]);
  rows.push(['handling', 'handled_by_ai', f.handled_by_ai], ['handling', 'taken_over', f.taken_over], ['handling', 'handed_off', f.handed_off], ['handling', 'override_rate', f.override_rate]);
  const levels = (section: string, name: string, c: LevelCounts) => {
    for (const l of LEVELS) rows.push([section, `${name}.${l}`, c[l]]);
  };
  levels('compliance', 'overall', f.compliance);
  for (const [cat, c] of Object.entries(f.compliance_by_category)) if (c) levels('compliance_by_category', cat, c);
  for (const [t, c] of Object.entries(f.compliance_by_type)) levels('compliance_by_type', t, c);
  rows.push(['review', 'queued', f.review.queued], ['review', 'sampled', f.review.sampled], ['review', 'reviewed', f.review.reviewed], ['review', 'due', f.review.due]);
  return ['section,key,value', ...rows.map((r) => r.map(field).join(','))].join('\r\n') + '\r\n';
}
