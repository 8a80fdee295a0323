// The desktop app's commands and events (Tauri IPC), when the console runs inside it; null in
// a browser.

type Invoke = <T = unknown>(cmd: string, args?: Record<string, unknown>) => Promise<T>;
type Listen = (event: string, cb: (e: { payload: unknown }) => void) => Promise<() => void>;
const tauri = (globalThis as { __TAURI__?: { core?: { invoke?: Invoke }; event?: { listen?: Listen } } }).__TAURI__;

export const desktop: { invoke: Invoke; listen: Listen } | null =
  tauri?.core?.invoke && tauri.event?.listen ? { invoke: tauri.core.invoke, listen: tauri.event.listen } : null;
