import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from './processes.js';

/**
 * For `--compiled`: the gateway as production runs it (plain JS, no tsx loader thread and its V8
 * isolate, which add tens of MB to RSS), without touching the repository's dist/. Each file under src/
 * is transpiled on its own (no type check: `npm run typecheck` does that) into `<dir>/dist`, beside
 * links to the repository's migrations/, node_modules/ and package.json, so imports and the migration
 * runner's `../../migrations` resolve as they do from dist/. Returns the path of cli.js.
 */
export async function compileGateway(dir: string): Promise<string> {
  const srcRoot = path.join(REPO_ROOT, 'src');
  const outRoot = path.join(dir, 'dist');
  const files = (await readdir(srcRoot, { recursive: true })).filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'));
  for (const file of files) {
    const source = await readFile(path.join(srcRoot, file), 'utf8');
    const output = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false },
      reportDiagnostics: false,
    });
    const target = path.join(outRoot, file.replace(/\.ts$/, '.js'));
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, output.outputText);
  }
  for (const name of ['migrations', 'node_modules', 'package.json']) await symlink(path.join(REPO_ROOT, name), path.join(dir, name));
  return path.join(outRoot, 'cli.js');
}
