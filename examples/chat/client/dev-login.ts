/** The development login: POST /auth/dev-token {"sub"} → {"access_token"}. Only served when the Worker enables devLogin. */

export class LoginError extends Error {
  override name = 'LoginError';
}

export async function devLogin(baseUrl: string, name: string, fetchImpl: typeof fetch = fetch): Promise<string> {
  const endpoint = new URL('/auth/dev-token', baseUrl);
  let response: Response;
  try {
    response = await fetchImpl(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sub: name }),
    });
  } catch (error) {
    // Thrown (not LoginError): the client treats it as transient and keeps retrying.
    throw new Error(`Cannot reach ${endpoint.origin} to log in (${(error as Error).message}); is \`npm start\` running?`);
  }
  const body = (await response.json().catch(() => ({}))) as { access_token?: string; error?: string };
  if (!response.ok || !body.access_token) {
    throw new LoginError(body.error ?? `Login failed: the server answered ${response.status}.`);
  }
  return body.access_token;
}
