/**
 * The Vulkan driver manifest (ICD json) fix for headless NVIDIA hosts.
 *
 * Why: Dawn (npm `webgpu`) reaches an NVIDIA GPU through the Vulkan loader, which reads the driver manifests under
 * /usr/share/vulkan/icd.d (or /etc/vulkan/icd.d). NVIDIA's stock manifest points at libGLX_nvidia.so.0, and on a
 * headless host (no X server, containers) that library can fail with "Could not get 'vkCreateInstance'". A manifest
 * that points at libEGL_nvidia.so.0 works there. The loader takes a manifest from the environment variable
 * VK_DRIVER_FILES (loader ≥ 1.3.207; older loaders read VK_ICD_FILENAMES), read when Dawn creates its Vulkan
 * instance: setting process.env before the first `navigator.gpu.requestAdapter()` is early enough.
 *
 * Modes (`--gpu-icd <mode>` or MATHAGENT_GPU_ICD): `auto` writes the EGL manifest into the user's config dir and
 * selects it, `off` leaves the environment alone, a path to a .json manifest selects that file.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { configDir } from '../store/paths';

export type GpuIcdMode = { kind: 'auto' } | { kind: 'off' } | { kind: 'file'; path: string };

/** The library the EGL manifest points at. */
export const NVIDIA_EGL_LIBRARY = 'libEGL_nvidia.so.0';
/** Used when no stock NVIDIA manifest says which Vulkan version the driver implements. */
export const DEFAULT_ICD_API_VERSION = '1.3.0';
/** The file name of the manifest `auto` writes (under `<configDir>/vulkan/`). */
export const EGL_ICD_FILE_NAME = 'nvidia_egl_icd.json';

/** Folders NVIDIA drivers install their user-space libraries into (containers mount them under /usr/local/nvidia). */
export const NVIDIA_LIBRARY_DIRS: readonly string[] = [
  '/usr/local/nvidia/lib64',
  '/usr/local/nvidia/lib',
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
  '/lib/x86_64-linux-gnu',
];

/** Where stock Vulkan driver manifests live (the loader's search order, roughly). */
export const ICD_MANIFEST_DIRS: readonly string[] = [
  '/etc/vulkan/icd.d',
  '/usr/share/vulkan/icd.d',
  '/usr/local/share/vulkan/icd.d',
  '/usr/local/nvidia/share/vulkan/icd.d',
];

/**
 * Parse a mode string. Empty / undefined means `off` (nothing changes unless asked). Throws an error that says
 * what to pass for anything else that is not `auto`, `off` or a path ending in .json.
 */
export function parseGpuIcdMode(value: string | undefined | null): GpuIcdMode {
  const v = (value ?? '').trim();
  if (v === '' || v === 'off' || v === 'none' || v === '0') return { kind: 'off' };
  if (v === 'auto') return { kind: 'auto' };
  if (/\.json$/i.test(v)) return { kind: 'file', path: resolve(v) };
  throw new Error(`--gpu-icd / MATHAGENT_GPU_ICD: expected 'auto', 'off' or a path to a Vulkan ICD manifest (.json), got '${v}'`);
}

/** Run `ldconfig -p` and return its output ('' when ldconfig is missing or fails: callers then search folders). */
export function ldconfigCache(): string {
  for (const bin of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    try {
      return execFileSync(bin, ['-p'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      // try the next location
    }
  }
  return '';
}

/**
 * Paths `ldconfig -p` lists for a library name, 64-bit entries first. Lines look like
 * `\tlibEGL_nvidia.so.0 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libEGL_nvidia.so.0`.
 */
export function parseLdconfig(output: string, library: string): string[] {
  const hits: Array<{ path: string; is64: boolean }> = [];
  for (const line of output.split('\n')) {
    const m = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S.*?)\s*$/.exec(line);
    if (!m || m[1] !== library) continue;
    hits.push({ path: m[3]!, is64: /x86-64|64bit|AArch64/i.test(m[2]!) });
  }
  return [...hits.filter((h) => h.is64), ...hits.filter((h) => !h.is64)].map((h) => h.path);
}

export interface FindLibraryOptions {
  /** `ldconfig -p` output; default: run ldconfig. */
  ldconfigOutput?: string;
  /** Extra folders searched before the defaults (e.g. LD_LIBRARY_PATH's). */
  dirs?: readonly string[];
  /** File test; default fs.existsSync (tests pass a fake file system). */
  exists?: (path: string) => boolean;
}

/** Find a shared library: LD_LIBRARY_PATH-style folders first, then the ldconfig cache, then the usual folders. */
export function findLibrary(library: string, opts: FindLibraryOptions & { defaultDirs?: readonly string[] } = {}): string | null {
  const exists = opts.exists ?? existsSync;
  for (const d of opts.dirs ?? []) {
    if (d && exists(join(d, library))) return join(d, library);
  }
  const fromCache = parseLdconfig(opts.ldconfigOutput ?? ldconfigCache(), library).find((p) => exists(p));
  if (fromCache) return fromCache;
  for (const d of opts.defaultDirs ?? NVIDIA_LIBRARY_DIRS) {
    if (exists(join(d, library))) return join(d, library);
  }
  return null;
}

/** The folders of LD_LIBRARY_PATH (the dynamic linker searches them before its cache). */
export function ldLibraryDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d.trim() !== '');
}

/** The NVIDIA EGL driver library, or null where no NVIDIA driver is installed. */
export function findNvidiaEglLibrary(opts: FindLibraryOptions = {}): string | null {
  return findLibrary(NVIDIA_EGL_LIBRARY, { ...opts, dirs: opts.dirs ?? ldLibraryDirs() });
}

/** The Vulkan loader Dawn dlopens (`libvulkan.so.1`), or null: then `apt-get install libvulkan1`. */
export function findVulkanLoader(opts: FindLibraryOptions = {}): string | null {
  return findLibrary('libvulkan.so.1', { ...opts, dirs: opts.dirs ?? ldLibraryDirs() });
}

/** The stock NVIDIA manifests present (nvidia_icd.json and friends), with their library and api_version. */
export function stockNvidiaManifests(opts: { dirs?: readonly string[]; read?: (p: string) => string | null } = {}): Array<{ path: string; libraryPath: string; apiVersion: string | null }> {
  const read = opts.read ?? ((p: string) => { try { return readFileSync(p, 'utf8'); } catch { return null; } });
  const out: Array<{ path: string; libraryPath: string; apiVersion: string | null }> = [];
  for (const dir of opts.dirs ?? ICD_MANIFEST_DIRS) {
    for (const name of ['nvidia_icd.json', 'nvidia_icd.x86_64.json']) {
      const path = join(dir, name);
      const text = read(path);
      if (text === null) continue;
      const m = parseIcdManifest(text);
      if (m) out.push({ path, libraryPath: m.libraryPath, apiVersion: m.apiVersion });
    }
  }
  return out;
}

/** library_path and api_version of an ICD manifest, or null when the text is not one. */
export function parseIcdManifest(text: string): { libraryPath: string; apiVersion: string | null } | null {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return null;
  }
  const icd = (j as { ICD?: { library_path?: unknown; api_version?: unknown } } | null)?.ICD;
  if (!icd || typeof icd.library_path !== 'string' || icd.library_path === '') return null;
  return { libraryPath: icd.library_path, apiVersion: typeof icd.api_version === 'string' ? icd.api_version : null };
}

/** The text of an ICD manifest for a driver library (an absolute path, so no LD_LIBRARY_PATH is needed for it). */
export function eglIcdManifest(libraryPath: string, apiVersion: string = DEFAULT_ICD_API_VERSION): string {
  if (!isAbsolute(libraryPath)) throw new Error(`ICD manifest: library path must be absolute, got '${libraryPath}'`);
  if (!/^\d+\.\d+\.\d+$/.test(apiVersion)) throw new Error(`ICD manifest: api_version must look like 1.3.0, got '${apiVersion}'`);
  return `${JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: libraryPath, api_version: apiVersion } }, null, 2)}\n`;
}

/**
 * Write the EGL manifest to `<dir>/nvidia_egl_icd.json` (write then rename, so a concurrent reader never sees half
 * a file) and return its path. An identical existing file is left untouched.
 */
export function writeEglIcdManifest(dir: string, libraryPath: string, apiVersion?: string): string {
  const text = eglIcdManifest(libraryPath, apiVersion);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, EGL_ICD_FILE_NAME);
  try {
    if (readFileSync(file, 'utf8') === text) return file;
  } catch {
    // absent: write it
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, file);
  return file;
}

/** The folder `auto` writes its manifest into. */
export function icdManifestDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'vulkan');
}

export interface ApplyGpuIcdResult {
  /** True when this call pointed VK_DRIVER_FILES at a manifest. */
  applied: boolean;
  /** The manifest now selected through the environment, if any. */
  manifest?: string;
  /** One line for logs and `mathagent doctor`. */
  detail: string;
}

export interface ApplyGpuIcdOptions {
  env?: NodeJS.ProcessEnv;
  /** Where `auto` writes the manifest; default `<configDir>/vulkan`. */
  dir?: string;
  /** The EGL library; default: searched (findNvidiaEglLibrary). Pass null to simulate a host without one. */
  eglLibrary?: string | null;
  /** api_version for the manifest; default: from the stock NVIDIA manifest, else 1.3.0. */
  apiVersion?: string;
  /** Replace a VK_DRIVER_FILES / VK_ICD_FILENAMES the user set (default false: the user's choice wins). */
  force?: boolean;
}

/** Point both variables at one manifest: VK_DRIVER_FILES (current loaders) and VK_ICD_FILENAMES (older ones). */
function select(env: NodeJS.ProcessEnv, manifest: string): void {
  env.VK_DRIVER_FILES = manifest;
  env.VK_ICD_FILENAMES = manifest;
}

/**
 * Apply a mode to the environment (default process.env) before Dawn creates its Vulkan instance.
 * Never throws for `auto` on a host without NVIDIA (it reports why nothing was done); throws for a `file` mode
 * whose manifest is missing or unreadable, because the user asked for that file.
 */
export function applyGpuIcd(mode: GpuIcdMode, opts: ApplyGpuIcdOptions = {}): ApplyGpuIcdResult {
  const env = opts.env ?? process.env;
  if (mode.kind === 'off') return { applied: false, detail: 'gpu-icd off: the Vulkan loader uses its own driver manifests' };
  const preset = env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES;
  if (preset && !opts.force) {
    return { applied: false, manifest: preset, detail: `gpu-icd ${mode.kind}: kept VK_DRIVER_FILES/VK_ICD_FILENAMES=${preset} set by the user` };
  }
  if (mode.kind === 'file') {
    let text: string;
    try {
      if (!statSync(mode.path).isFile()) throw new Error('not a file');
      text = readFileSync(mode.path, 'utf8');
    } catch (e) {
      throw new Error(`--gpu-icd ${mode.path}: cannot read the manifest (${(e as Error).message}); pass 'auto' or an existing ICD .json`);
    }
    if (!parseIcdManifest(text)) throw new Error(`--gpu-icd ${mode.path}: not a Vulkan ICD manifest (needs {"ICD": {"library_path": ...}})`);
    select(env, mode.path);
    return { applied: true, manifest: mode.path, detail: `gpu-icd: VK_DRIVER_FILES=${mode.path}` };
  }
  const lib = opts.eglLibrary === undefined ? findNvidiaEglLibrary({ dirs: ldLibraryDirs(env) }) : opts.eglLibrary;
  if (!lib) {
    return { applied: false, detail: `gpu-icd auto: ${NVIDIA_EGL_LIBRARY} not found (no NVIDIA driver on this host?); nothing changed` };
  }
  const apiVersion = opts.apiVersion ?? stockNvidiaManifests().find((m) => m.apiVersion && /^\d+\.\d+\.\d+$/.test(m.apiVersion))?.apiVersion ?? DEFAULT_ICD_API_VERSION;
  const manifest = writeEglIcdManifest(opts.dir ?? icdManifestDir(env), lib, apiVersion);
  select(env, manifest);
  return { applied: true, manifest, detail: `gpu-icd auto: wrote ${manifest} (library ${lib}, api ${apiVersion}) and set VK_DRIVER_FILES` };
}

/** Apply MATHAGENT_GPU_ICD from the environment (what backend init calls before Dawn loads). */
export function applyGpuIcdFromEnv(env: NodeJS.ProcessEnv = process.env): ApplyGpuIcdResult {
  return applyGpuIcd(parseGpuIcdMode(env.MATHAGENT_GPU_ICD), { env });
}
