// node_wasi.mjs - runs a wasm32-wasi command under Node's WASI (preview1) for
// the benchmark comparison: node node_wasi.mjs FILE.wasm [ARGS...].  The
// guest sees argv[0] = FILE.wasm, no environment and no preopened
// directories; the process exits with the guest's exit code.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [file, ...args] = process.argv.slice(2);
if (!file) {
    process.stderr.write('usage: node node_wasi.mjs FILE.wasm [ARGS...]\n');
    process.exit(2);
}
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: {},
                        returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
