import { spawnSync } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { canonicalUri } from './canonical.js';
import { AuthError } from './errors.js';
import { createPayloadVerifier } from './payload.js';
import { createSigV4Verifier, type SigV4Request } from './sigv4.js';

/**
 * Requests signed by boto3/botocore (what the AWS CLI uses), captured before they are sent: a
 * `before-send` handler records the prepared request and answers in place of the network. Skipped
 * where python3-boto3 is not installed.
 */

const hasBoto3 = spawnSync('python3', ['-c', 'import boto3'], { stdio: 'ignore' }).status === 0;

const ACCESS_KEY = 'jt_test_boto3fixture00000000000000000';
const SECRET = 'jts_boto3-fixture-secret-000000000000000000';

const SCRIPT = String.raw`
import base64, io, json, sys
import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

captured = []
class EmptyRaw:
    def stream(self, **kwargs):
        yield b''

def before_send(request, **kwargs):
    body = request.body
    if hasattr(body, 'read'):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
    captured.append({'kind': 'sent', 'method': request.method, 'url': request.url, 'headers': headers, 'body': base64.b64encode(body or b'').decode()})
    return AWSResponse(request.url, 200, {}, EmptyRaw())

def client(endpoint, style, **config):
    s3 = boto3.client('s3', endpoint_url=endpoint, region_name='us-east-1', aws_access_key_id='${ACCESS_KEY}',
                      aws_secret_access_key='${SECRET}', config=Config(s3={'addressing_style': style}, **config))
    s3.meta.events.register('before-send.s3.*', before_send)
    return s3

keys = ["plain.txt", "a b+c!*'()~\u00e9/x", "dir//double/./x", "\u65e5\u672c/\u30d5\u30a1\u30a4\u30eb.txt", "%2F-percent%"]
# https makes botocore send aws-chunked bodies with a CRC32 trailer; http sends a hex SHA-256.
for endpoint in ['http://s3.jt.test:9000', 'https://s3.jt.test:9443']:
    for style in ['path', 'virtual']:
        s3 = client(endpoint, style)
        for key in keys:
            s3.put_object(Bucket='bucket', Key=key, Body=b'hello from boto3', ContentType='text/plain', Metadata={'m': 'v  v'})
            s3.put_object(Bucket='bucket', Key=key, Body=io.BytesIO(b'x' * 70000), ChecksumAlgorithm='SHA256')
        for call in [lambda: s3.list_objects_v2(Bucket='bucket', Prefix="a b+c/\u00e9*'", Delimiter='/', StartAfter='s&t=u'),
                     lambda: s3.get_object(Bucket='bucket', Key=keys[1], Range='bytes=1-2'),
                     lambda: s3.copy_object(Bucket='bucket', Key='copy', CopySource={'Bucket': 'bucket', 'Key': keys[1]}),
                     lambda: s3.delete_objects(Bucket='bucket', Delete={'Objects': [{'Key': 'a'}, {'Key': 'b c'}]})]:
            try:
                call()
            except Exception:
                pass
v4 = client('http://s3.jt.test:9000', 'path', signature_version='s3v4')
for key in keys:
    captured.append({'kind': 'presigned-v4', 'method': 'GET', 'url': v4.generate_presigned_url('get_object', Params={'Bucket': 'bucket', 'Key': key}, ExpiresIn=3600)})
captured.append({'kind': 'presigned-default', 'method': 'GET', 'url': client('http://s3.jt.test:9000', 'path').generate_presigned_url('get_object', Params={'Bucket': 'bucket', 'Key': 'k'})})
json.dump(captured, sys.stdout)
`;

interface BotoCapture {
  kind: 'sent' | 'presigned-v4' | 'presigned-default';
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: string;
}

function toRequest(capture: BotoCapture): { request: SigV4Request; body: Buffer } {
  const afterScheme = capture.url.slice(capture.url.indexOf('//') + 2);
  const slash = afterScheme.indexOf('/');
  const host = slash < 0 ? afterScheme : afterScheme.slice(0, slash);
  const target = slash < 0 ? '/' : afterScheme.slice(slash);
  const q = target.indexOf('?');
  return {
    // urllib3 sends Host from the URL; botocore signed it from there too.
    request: { method: capture.method, path: q < 0 ? target : target.slice(0, q), query: q < 0 ? '' : target.slice(q + 1), headers: { host, ...capture.headers } },
    body: Buffer.from(capture.body ?? '', 'base64'),
  };
}

describe.skipIf(!hasBoto3)('boto3 / botocore signed requests', () => {
  const verifier = createSigV4Verifier({ lookupSecrets: async (id) => (id === ACCESS_KEY ? [SECRET] : null) });
  const run = spawnSync('python3', ['-c', SCRIPT], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const captures: BotoCapture[] = run.status === 0 ? (JSON.parse(run.stdout) as BotoCapture[]) : [];

  it('captured requests from boto3', () => {
    expect(run.stderr).toBe('');
    expect(captures.length).toBeGreaterThan(40);
  });

  it('verifies every header-signed request and its body (hex SHA-256 over http, aws-chunked + trailer over https)', async () => {
    const modes = new Set<string>();
    for (const capture of captures.filter((c) => c.kind === 'sent')) {
      const { request, body } = toRequest(capture);
      expect(canonicalUri(request.path)).toBe(request.path);
      const auth = await verifier.verify(request);
      modes.add(auth.payloadMode);
      const payload = createPayloadVerifier(auth, request.headers);
      const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
      await pipeline([Readable.from([body]), ...payload.transforms, sink]);
      if (request.method === 'PUT' && body.length > 0) expect(payload.tap.result.bytes).toBeGreaterThan(0);
    }
    expect([...modes].sort()).toEqual(['SHA256', 'STREAMING-UNSIGNED-PAYLOAD-TRAILER']);
  });

  it('verifies s3v4 presigned URLs, and refuses the SigV2 ones botocore makes by default for custom endpoints', async () => {
    for (const capture of captures.filter((c) => c.kind === 'presigned-v4')) {
      const auth = await verifier.verify(toRequest(capture).request);
      expect(auth.authType).toBe('presigned');
    }
    const sigV2 = captures.find((c) => c.kind === 'presigned-default')!;
    const error = await verifier.verify(toRequest(sigV2).request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).code).toBe('InvalidRequest');
  });
});
