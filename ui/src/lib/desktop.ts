// The desktop app's commands (Tauri IPC), when the console runs inside it; null in a browser.

type Invoke = <T = unknown>(cmd: string, args?: Record<string, unknown>) => Promise<T>;
const tauri = (globalThis as { __TAURI__?: { core?: { invoke?: Invoke } } }).__TAURI__;

export const desktop: { invoke: Invoke } | null = tauri?.core?.invoke ? { invoke: tauri.core.invoke } : null;
