"""boto3 S3 client calls in one process, for test/integration/clients-boto3.test.ts.

    python3 boto3-call.py '[["put_object", {...}], ["head_object", {...}]]'

The client is boto3 at its defaults apart from what a custom endpoint needs: SigV4 (botocore presigns
with SigV2 against a custom endpoint otherwise), path-style addressing and no retries. Two extra
kwargs: `_BodyFile` opens a file as `Body`; `_OutFile` receives a streamed `Body`. Prints one JSON
result per call, in order: {"result": ...} (minus ResponseMetadata, plus HTTPStatusCode) or, when the
call raised a ClientError, {"error": {"Code", "Message", ...}, "HTTPStatusCode": ...}.
"""
import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def call(client, method, kwargs):
    body_file = kwargs.pop('_BodyFile', None)
    out_file = kwargs.pop('_OutFile', None)
    body = open(body_file, 'rb') if body_file else None
    if body:
        kwargs['Body'] = body
    try:
        result = getattr(client, method)(**kwargs)
    except ClientError as error:
        return {'error': error.response.get('Error'), 'HTTPStatusCode': error.response['ResponseMetadata'].get('HTTPStatusCode')}
    finally:
        if body:
            body.close()
    if isinstance(result, dict):
        if 'Body' in result:
            with open(out_file, 'wb') as out:
                for chunk in result.pop('Body').iter_chunks(1024 * 1024):
                    out.write(chunk)
        result['HTTPStatusCode'] = result.pop('ResponseMetadata', {}).get('HTTPStatusCode')
    return {'result': result}


def main():
    client = boto3.client(
        's3',
        endpoint_url=os.environ['JT_ENDPOINT'],
        region_name='us-east-1',
        aws_access_key_id=os.environ['JT_ACCESS_KEY_ID'],
        aws_secret_access_key=os.environ['JT_SECRET_ACCESS_KEY'],
        config=Config(signature_version='s3v4', s3={'addressing_style': 'path'}, retries={'max_attempts': 1, 'mode': 'standard'}),
    )
    results = [call(client, method, kwargs) for method, kwargs in json.loads(sys.argv[1])]
    print(json.dumps(results, default=str))


if __name__ == '__main__':
    main()
