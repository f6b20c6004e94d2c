import { finishAbortedUpload, markAborted } from '../../store/multipart.js';
import type { OperationHandler } from '../context.js';
import { findSettledUpload, noSuchUpload } from '../multipart-upload.js';

/**
 * AbortMultipartUpload: the parts' rows go and their bytes leave the account's usage at once; then the
 * backend's parts are deleted. A part still streaming fails (NoSuchUpload) and, as the upload's last
 * writer, finishes the backend side itself; failing that, the collector does. An upload that is being
 * completed is answered once that ends: NoSuchUpload if it completed.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html
 */
export const abortMultipartUpload: OperationHandler<'AbortMultipartUpload'> = async (op, ctx) => {
  const upload = await findSettledUpload(ctx, op);
  if (!upload || (await markAborted(ctx.deps.db, upload.id)) !== 'aborted') throw noSuchUpload(op.uploadId);
  try {
    await finishAbortedUpload({ db: ctx.deps.db, backend: ctx.deps.backend, logger: ctx.log }, upload.id);
  } catch (error) {
    // The abort itself stands: the parts no longer count, and the collector deletes them from the backend.
    ctx.log.warn({ err: error, uploadId: op.uploadId }, 'could not delete an aborted upload\'s parts from the backend; the collector retries');
  }
  return { status: 204 };
};
