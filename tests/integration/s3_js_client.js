// Runs S3 operations with the AWS SDK for JavaScript v3 (@aws-sdk/client-s3),
// for tests/integration/test_s3_*.py. One JSON argument:
//   {"endpoint": "http://127.0.0.1:PORT", "region": "us-east-1",
//    "accessKeyId": "...", "secretAccessKey": "...", "forcePathStyle": true,
//    "ops": [{"op": "PutObject", "Bucket": "b", "Key": "k", "Body": "text"}, ...]}
// A Body may instead be given as "BodyBase64" or "BodyFile" (a path, streamed)
// Prints one JSON line: {"results": [...]} with, per op, either
//   {"ok": true, "status": N, ...op-specific fields (Body text as BodyBase64, Keys, ...)}
//   {"ok": false, "status": N, "code": "AccessDenied", "message": "..."}
// and exits 0; exits 2 on a bad command. Never retries (maxAttempts 1), so a
// request counts once in the connector's access counts.
'use strict';

const fs = require('fs');
const path = require('path');
const s3 = require('@aws-sdk/client-s3');

async function bodyBytes(body) {
    if (!body) return Buffer.alloc(0);
    return Buffer.from(await body.transformToByteArray());
}

function inputOf(op) {
    const input = Object.assign({}, op);
    delete input.op;
    if (input.BodyBase64 !== undefined) {
        input.Body = Buffer.from(input.BodyBase64, 'base64');
        delete input.BodyBase64;
    } else if (input.BodyFile !== undefined) {
        input.Body = fs.createReadStream(input.BodyFile);
        input.ContentLength = fs.statSync(input.BodyFile).size;
        delete input.BodyFile;
    } else if (typeof input.Body === 'string') {
        input.Body = Buffer.from(input.Body);
    }
    return input;
}

async function run(client, op) {
    const Command = s3[op.op + 'Command'];
    if (!Command) throw new Error('unknown operation ' + op.op);
    const out = await client.send(new Command(inputOf(op)));
    const r = {ok: true, status: out.$metadata.httpStatusCode};
    if (op.op === 'GetObject') r.BodyBase64 = (await bodyBytes(out.Body)).toString('base64');
    if (out.ETag) r.ETag = out.ETag;
    if (out.ContentLength !== undefined) r.ContentLength = out.ContentLength;
    if (out.Contents) r.Keys = out.Contents.map((c) => c.Key);
    if (out.Buckets) r.Buckets = out.Buckets.map((b) => b.Name);
    if (out.UploadId) r.UploadId = out.UploadId;
    if (out.CopyObjectResult) r.CopyETag = out.CopyObjectResult.ETag;
    if (out.Deleted) r.Deleted = out.Deleted.map((d) => d.Key);
    return r;
}

async function main() {
    let cmd;
    try {
        cmd = JSON.parse(process.argv[2]);
    } catch (e) {
        process.stderr.write('usage: node ' + path.basename(__filename) + ' JSON\n');
        process.exit(2);
    }
    const client = new s3.S3Client({
        endpoint: cmd.endpoint,
        region: cmd.region || 'us-east-1',
        forcePathStyle: cmd.forcePathStyle !== false,
        maxAttempts: 1,
        credentials: {accessKeyId: cmd.accessKeyId, secretAccessKey: cmd.secretAccessKey},
    });
    const results = [];
    for (const op of cmd.ops) {
        try {
            results.push(await run(client, op));
        } catch (e) {
            const meta = e.$metadata || {};
            results.push({ok: false, status: meta.httpStatusCode || null,
                          code: e.Code || e.name, message: e.message});
        }
    }
    client.destroy();
    process.stdout.write(JSON.stringify({results}) + '\n');
}

main().catch((e) => {
    process.stderr.write(String(e && e.stack || e) + '\n');
    process.exit(2);
});
