// Supervisor actions through the REST API; each result or error is shown as a toast.

import { api, ApiError } from './api';
import type { LiveCall } from './types/LiveCall';

export type Toast = { id: number; text: string; error: boolean };

class Actions {
  toasts: Toast[] = $state([]);
  private n = 0;

  show(text: string, error = false) {
    const id = ++this.n;
    this.toasts.push({ id, text, error });
    setTimeout(() => (this.toasts = this.toasts.filter((t) => t.id !== id)), error ? 8000 : 4000);
  }

  private async run(label: string, method: string, path: string, body?: unknown): Promise<boolean> {
    try {
      await api(method, path, body);
      this.show(label);
      return true;
    } catch (e) {
      this.show(`${label} refused: ${e instanceof ApiError ? e.message : String(e)}`, true);
      return false;
    }
  }

  confirm(sid: string) { return this.run('Dispatch confirmed', 'POST', `/api/calls/${sid}/dispatch/confirm`); }
  recall(sid: string) { return this.run('Dispatch recalled', 'POST', `/api/calls/${sid}/dispatch/recall`); }
  dispatchNow(sid: string) { return this.run('Dispatched now', 'POST', `/api/calls/${sid}/dispatch/now`); }
  whisper(sid: string, text: string) { return this.run('Whisper sent', 'POST', `/api/calls/${sid}/whisper`, { text }); }
  edit(sid: string, fields: Record<string, unknown>) { return this.run('Incident corrected', 'PATCH', `/api/calls/${sid}/incident`, fields); }
  takeover(sid: string) { return this.run('Call taken over', 'POST', `/api/calls/${sid}/takeover`); }
  link(sid: string, incident: number) { return this.run(`Linked to I-${incident}`, 'POST', `/api/calls/${sid}/link`, { incident }); }
  keepApart(sid: string) { return this.run('Kept apart from the possible duplicate', 'POST', `/api/calls/${sid}/keep-apart`); }
  unlink(sid: string) { return this.run('Unlinked: an incident of its own', 'POST', `/api/calls/${sid}/unlink`); }
  acknowledge(sid: string, alertId: number) { return this.run(`Alert ${alertId} acknowledged`, 'POST', `/api/calls/${sid}/alerts/${alertId}/ack`); }

  /** Acknowledges the oldest open alert of a call. */
  acknowledgeNext(c: LiveCall) {
    const a = c.alerts.find((x) => !x.acknowledged_by);
    if (!a) {
      this.show('No open alert on this call', true);
      return Promise.resolve(false);
    }
    return this.acknowledge(c.call_sid, a.alert_id);
  }
}

export const actions = new Actions();
