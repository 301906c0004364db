/**
 * The Python program that runs one tool call inside the sandbox process (see pythonTool.ts). It is passed with
 * `python3 -I -B -c`, reads its job as JSON on stdin, and writes one JSON result line to a duplicate of the
 * original stdout; the cells' own stdout is captured (bounded), C-level writes to fd 1/2 go to /dev/null.
 *
 * In-process layers (the OS layers — namespaces, user, process group — are set up by pythonTool.ts):
 * - resource limits: address space, CPU seconds, file size, number of processes, open files, no core dumps;
 * - an audit hook (PEP 578) that refuses process creation (fork, exec, spawn, system, Popen), signals to other
 *   processes, sockets when the network is off, writes/removals/renames outside the working directory, and
 *   the ctypes lookups that would get around it (libc fork/exec/syscall...).
 * Earlier cells are re-run first with their output discarded (the paper's stateful interpreter); only the last
 * cell's output is returned, or the last line of its traceback. A notebook-style last expression is printed.
 */
export const PYTHON_RUNNER = String.raw`
import sys, os, io, json, ast, traceback, resource
job = json.loads(sys.stdin.read())
res_fd = os.dup(1)
_null = os.open(os.devnull, os.O_WRONLY)
os.dup2(_null, 1)
os.dup2(_null, 2)
os.chdir(job['dir'])

def _lim(name, soft, hard=None):
    r = getattr(resource, name, None)
    if r is None or soft is None:
        return
    try:
        resource.setrlimit(r, (soft, soft if hard is None else hard))
    except (ValueError, OSError):
        pass
_lim('RLIMIT_AS', job['memoryBytes'])
_lim('RLIMIT_CPU', job['cpuSeconds'], job['cpuSeconds'] + 1)
_lim('RLIMIT_FSIZE', job['fileBytes'])
_lim('RLIMIT_NPROC', job['nproc'])
_lim('RLIMIT_NOFILE', 64)
_lim('RLIMIT_CORE', 0)

def _make_hook(job):
    ROOT = os.path.realpath(job['dir'])
    NET = bool(job['network'])
    _PROC = {'os.system', 'os.exec', 'os.posix_spawn', 'os.spawn', 'os.fork', 'os.forkpty', 'subprocess.Popen', 'pty.spawn', 'os.kill', 'os.killpg', 'os.setuid', 'os.setgid', 'resource.setrlimit', 'resource.prlimit', 'sys.remote_exec'}
    _SOCK = {'socket.__new__', 'socket.connect', 'socket.bind', 'socket.getaddrinfo', 'socket.sendto', 'socket.sendmsg', 'socket.gethostbyname', 'socket.gethostbyaddr'}
    _FS2 = {'os.rename'}
    _FS1 = {'os.remove', 'os.rmdir', 'os.mkdir', 'os.chmod', 'os.chown', 'os.truncate', 'os.utime', 'os.chflags', 'os.lchflags', 'os.lchmod', 'shutil.rmtree', 'os.mkfifo', 'os.mknod'}
    _BAD_SYMS = {b'fork', b'vfork', b'clone', b'clone3', b'execve', b'execv', b'execvp', b'execl', b'execvpe', b'system', b'popen', b'posix_spawn', b'posix_spawnp', b'syscall', b'socket', b'connect', b'kill', b'setrlimit', b'prlimit', b'prlimit64', b'unshare', b'setns', b'ptrace', b'setuid', b'setgid', b'open', b'openat', b'creat', b'unlink', b'rename'}
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def _inside(p):
        if isinstance(p, int):
            return True
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        if not isinstance(p, str):
            return False
        if p == os.devnull:
            return True
        full = os.path.realpath(p)
        return full == ROOT or full.startswith(ROOT + os.sep)

    def _hook(event, args):
        if event in _PROC:
            raise PermissionError('%s is not allowed in the sandbox' % event)
        if not NET and event in _SOCK:
            raise PermissionError('network access is not allowed in the sandbox')
        if event == 'open':
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in 'wax+')) or (mode is None and isinstance(flags, int) and flags & _WRITE)
            if writing and not _inside(path):
                raise PermissionError('writing outside the working directory is not allowed: %r' % (path,))
        elif event in _FS1:
            if not _inside(args[0]):
                raise PermissionError('%s outside the working directory is not allowed' % event)
        elif event in _FS2:
            if not (_inside(args[0]) and _inside(args[1])):
                raise PermissionError('%s outside the working directory is not allowed' % event)
        elif event == 'ctypes.dlopen':
            if args and args[0] is not None:
                raise PermissionError('loading native libraries is not allowed in the sandbox')
        elif event == 'ctypes.dlsym':
            name = args[1] if len(args) > 1 else None
            if isinstance(name, str):
                name = name.encode()
            if isinstance(name, bytes) and name in _BAD_SYMS:
                raise PermissionError('ctypes access to %s is not allowed in the sandbox' % name.decode())
    return _hook


class _Capture(io.TextIOBase):
    def __init__(self, limit):
        self.parts, self.size, self.limit, self.cut = [], 0, limit, False
    def writable(self):
        return True
    def write(self, s):
        if not isinstance(s, str):
            raise TypeError('write() argument must be str')
        room = self.limit - self.size
        if room > 0:
            self.parts.append(s[:room])
            self.size += min(len(s), room)
        if len(s) > room:
            self.cut = True
        return len(s)
    def value(self):
        return ''.join(self.parts)

def _run(src, g, show_last):
    tree = ast.parse(src, '<cell>', 'exec')
    last = None
    if show_last and tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body.pop()
    exec(compile(tree, '<cell>', 'exec'), g)
    if last is not None:
        v = eval(compile(ast.Expression(last.value), '<cell>', 'eval'), g)
        if v is not None:
            print(repr(v))

def _short(e):
    lines = traceback.format_exception_only(type(e), e)
    return (lines[-1] if lines else type(e).__name__).strip()

g = {'__name__': '__main__', '__builtins__': __builtins__}
sink = _Capture(0)
cap = _Capture(job['maxOutputChars'])
result = {'output': '', 'error': None, 'truncated': False}
# From here on the hook is in force for good (audit hooks cannot be removed).
if job.get('auditHook', True):
    sys.addaudithook(_make_hook(job))
del _make_hook
try:
    sys.stdout = sys.stderr = sink
    for cell in job['history']:
        try:
            _run(cell, g, False)
        except Exception:
            pass
    sys.stdout = cap
    try:
        _run(job['code'], g, True)
    except MemoryError:
        result['error'] = 'MemoryError: out of memory (the limit is %d MB)' % (job['memoryBytes'] // (1 << 20))
    except BaseException as e:
        result['error'] = _short(e)
finally:
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
result['output'] = cap.value()
result['truncated'] = cap.cut
data = (json.dumps(result) + '\n').encode('utf-8', 'replace')
while data:
    n = os.write(res_fd, data)
    data = data[n:]
os._exit(0)
`;
