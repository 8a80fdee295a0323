import { describe, expect, it } from 'vitest';
import { figuresCsv } from './stats';
import type { Figures } from './types/Figures';

const levels = (high: number, partial: number, low: number, non_compliant: number) => ({ high, partial, low, non_compliant });

describe('figuresCsv', () => {
  const f: Figures = {
    from_ms: Date.UTC(2026, 11, 1),
    to_ms: Date.UTC(2026, 11, 2),
    calls: 3,
    calls_per_hour: [[Date.UTC(2026, 11, 1, 9), 2], [Date.UTC(2026, 11, 1, 10), 1]],
    answer_to_dispatch_ms: { count: 2, p50: 12000, p90: 31000, histogram: [[0, 0], [10000, 1], [20000, 0], [30000, 1]] },
    handled_by_ai: 2,
    taken_over: 1,
    handed_off: 0,
    override_rate: 0.5,
    compliance: levels(1, 1, 1, 0),
    compliance_by_category: { case_entry: levels(1, 0, 2, 0) },
    compliance_by_type: { 'FSTRU,odd': levels(0, 1, 0, 0) },
    review: { queued: 2, sampled: 1, reviewed: 1, due: 1 },
  };
  const rows = figuresCsv(f).trimEnd().split('\r\n');

  it('has one row per figure, each with the number the page shows', () => {
    expect(rows[0]).toBe('section,key,value');
    expect(rows).toContain('calls_per_hour,2026-12-01T09:00:00.000Z,2');
    expect(rows).toContain('answer_to_dispatch_ms,p90,31000');
    expect(rows).toContain('answer_to_dispatch_histogram,30000,1');
    expect(rows).toContain('handling,override_rate,0.5');
    expect(rows).toContain('compliance_by_category,case_entry.low,2');
    expect(rows).toContain('review,due,1');
    // 3 period/calls + 2 hours + 3 + 4 bins + 4 handling + 3 × 4 levels + 4 review, and the header.
    expect(rows.length).toBe(1 + 3 + 2 + 3 + 4 + 4 + 12 + 4);
  });

  it('quotes a field with a comma', () => {
    expect(rows).toContain('compliance_by_type,"FSTRU,odd.partial",1');
  });
});
