// Recordings and voiced dispatch messages need the console's token, which an <audio src> cannot
// send: fetch them with it and play them from an object URL.

import { API_BASE, getToken, ApiError } from './api';

/** Fetches `path` with the token and returns an object URL for it (revoke it when done). */
export async function authedObjectUrl(path: string): Promise<string> {
  return URL.createObjectURL(await authedBlob(path));
}

/** The bytes of an authenticated media path (a recording for the waveform, say). */
export async function authedBlob(path: string): Promise<Blob> {
  const token = getToken();
  const r = await fetch(API_BASE + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try {
      msg = (await r.json()).error ?? msg;
    } catch {
      /* not JSON */
    }
    throw new ApiError(r.status, msg);
  }
  return r.blob();
}

/** Saves `data` as a file named `name`. */
export function download(name: string, data: string, type: string) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
