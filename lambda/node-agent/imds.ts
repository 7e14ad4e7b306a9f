/**
 * IMDSv2 (session token required, hop limit 1): the node's build id, claim token and API URL come
 * from instance tags, and the spot interruption notice from `spot/instance-action`.
 */
import { httpRequest } from './http';

export const DEFAULT_IMDS_URL = 'http://169.254.169.254';

const TOKEN_TTL_SECONDS = 21600;

export interface InstanceAction {
  action: string;
  time?: string;
}

export class ImdsClient {
  private token: string | undefined;

  constructor(
    private readonly baseUrl: string = DEFAULT_IMDS_URL,
    private readonly timeoutMs = 2000,
  ) {}

  private async sessionToken(): Promise<string> {
    if (this.token === undefined) {
      const response = await httpRequest(`${this.base()}/latest/api/token`, {
        method: 'PUT',
        headers: { 'x-aws-ec2-metadata-token-ttl-seconds': TOKEN_TTL_SECONDS },
        timeoutMs: this.timeoutMs,
      });
      if (response.status !== 200) {
        throw new Error(`IMDS token request answered ${response.status}`);
      }
      this.token = response.body.toString('utf8').trim();
    }
    return this.token;
  }

  private base(): string {
    return this.baseUrl.replace(/\/+$/, '');
  }

  /** GET a metadata path; `undefined` for 404. A rejected (expired) token is renewed once. */
  async get(path: string): Promise<string | undefined> {
    for (let attempt = 0; ; attempt++) {
      const response = await httpRequest(`${this.base()}${path}`, {
        method: 'GET',
        headers: { 'x-aws-ec2-metadata-token': await this.sessionToken() },
        timeoutMs: this.timeoutMs,
      });
      if (response.status === 401 && attempt === 0) {
        this.token = undefined;
        continue;
      }
      if (response.status === 404) {
        return undefined;
      }
      if (response.status !== 200) {
        throw new Error(`IMDS ${path} answered ${response.status}`);
      }
      return response.body.toString('utf8');
    }
  }

  /** An instance tag (launch templates enable InstanceMetadataTags); throws when it is missing. */
  async tag(key: string): Promise<string> {
    const value = await this.get(`/latest/meta-data/tags/instance/${encodeURIComponent(key)}`);
    if (value === undefined || value.trim() === '') {
      throw new Error(`instance tag ${key} is not set (are instance metadata tags enabled?)`);
    }
    return value.trim();
  }

  /** The spot interruption notice, or `undefined` while there is none (IMDS answers 404). */
  async spotInstanceAction(): Promise<InstanceAction | undefined> {
    const body = await this.get('/latest/meta-data/spot/instance-action');
    if (body === undefined) {
      return undefined;
    }
    try {
      const parsed = JSON.parse(body) as { action?: unknown; time?: unknown };
      return {
        action: typeof parsed.action === 'string' ? parsed.action : 'unknown',
        time: typeof parsed.time === 'string' ? parsed.time : undefined,
      };
    } catch {
      // A 200 is the notice, whatever its body says.
      return { action: 'unknown' };
    }
  }
}
