/**
 * scripts/setup.sh on simulated machines: a copy of the script in a scratch project, run by bash
 * with a PATH of only stand-ins for the system's package tools (apt-get, apt-cache, apt-config,
 * dpkg-query, dpkg-deb, sudo, id, npm) and the few plain tools it uses, so nothing real is read or
 * installed. The stand-ins keep a machine's state in files (installed packages, apt's sources,
 * the suites whose lists were fetched) and log the calls whose order matters (lists fetched and
 * read, installs, the download and unpacking, npm); any call they do not expect fails.
 * scripts/fresh-root-check.sh runs the real thing on a fresh Debian root.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const SETUP = join(import.meta.dirname, '..', '..', 'scripts', 'setup.sh');
const PACKAGES = [
  'chromium',
  'libvulkan1',
  'mesa-vulkan-drivers',
  'python3-torch',
  'python3-omegaconf',
  'libopenblas0-openmp',
];
const DEB = 'mesa-vulkan-drivers_25.0.7-2~bpo12+1_amd64.deb';
/** The real tools the script and the stand-ins use: nothing else is on their PATH. */
const PLAIN_TOOLS = [
  'bash',
  'cat',
  'env',
  'dirname',
  'basename',
  'grep',
  'sed',
  'head',
  'ls',
  'mkdir',
  'mv',
  'rm',
  'tee',
  'touch',
];
const BASH = which('bash');

const scratch = mkdtempSync(join(tmpdir(), 'pgm-setup-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function which(tool: string): string {
  const found = ['/usr/bin', '/bin'].map((dir) => join(dir, tool)).find((path) => existsSync(path));
  if (!found) throw new Error(`${tool} is not in /usr/bin or /bin`);
  return found;
}

/**
 * The stand-ins, as bash scripts over the machine's state in `sys`. Root is uid 0 or a call
 * through sudo; apt-get refuses to change anything otherwise, as the real one does.
 */
function standIns(sys: string, project: string): Record<string, string> {
  const common = `set -u
sys=${sys}
root() { [ "$(cat $sys/uid)" = 0 ] || [ -n "\${IN_SUDO:-}" ]; }
log() { echo "\${IN_SUDO:+sudo }$*" >>$sys/log; }
unexpected() { echo "stand-in: unexpected call: $0 $*" >&2; exit 101; }
# apt's sources as "suite mirror" lines: sources.list (one-line form) and sources.list.d/*.sources
sources() {
  sed -n 's/^deb \\([^ ]*\\) \\([^ ]*\\) .*/\\2 \\1/p' $sys/etc/sources.list
  for f in $sys/etc/sources.list.d/*.sources; do
    [ -e "$f" ] && echo "$(sed -n 's/^Suites: //p' "$f") $(sed -n 's/^URIs: //p' "$f")"
  done
  return 0
}
`;
  return {
    'apt-config': `${common}
[ "$*" = 'shell parts Dir::Etc::sourceparts/d' ] || unexpected "$@"
echo "parts='${sys}/etc/sources.list.d/'"`,
    'apt-get': `${common}
case "$1" in
  indextargets)
    [ "$*" = 'indextargets --no-release-info --format $(RELEASE) $(REPO_URI) Identifier: Packages' ] || unexpected "$@"
    sources ;;
  update)
    root || { echo 'E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)' >&2; exit 100; }
    : >$sys/lists
    failed=
    while read -r suite mirror; do
      if [ "$suite" = bookworm-backports ] && [ -e $sys/backports-unreachable ]; then
        echo "W: Failed to fetch \${mirror}dists/$suite/InRelease  Could not connect to the mirror" >&2; failed=1
      else
        echo "$suite" >>$sys/lists
        [ "$suite" != bookworm-backports ] || rm -f $sys/backports-stale
      fi
    done < <(sources)
    log "apt-get $* (lists: $(echo $(cat $sys/lists)))"
    [ -z "$failed" ] || { echo 'E: Some index files failed to download. They have been ignored, or old ones used instead.' >&2; exit 100; } ;;
  install)
    root || { echo 'E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)' >&2; exit 100; }
    log "apt-get $*"
    [ "$2 $3" = '-y -qq' ] || unexpected "$@"
    grep -qx bookworm $sys/lists || { echo "E: Unable to locate package $4" >&2; exit 100; }
    shift 3; printf '%s\\n' "$@" >>$sys/installed ;;
  download)
    log "apt-get $* (in \${PWD#${project}/})"
    [ "\${*: -1}" = mesa-vulkan-drivers/bookworm-backports ] || unexpected "$@"
    grep -qx bookworm-backports $sys/lists || { echo "E: Release 'bookworm-backports' for 'mesa-vulkan-drivers' was not found" >&2; exit 100; }
    [ ! -e $sys/backports-stale ] || { echo 'E: Failed to fetch http://mirror.example/debian/pool/main/m/mesa/mesa-vulkan-drivers_25.0.4-1~bpo12+1_amd64.deb  404  Not Found' >&2; exit 100; }
    echo 'a .deb' >${DEB} ;;
  *) unexpected "$@" ;;
esac`,
    'apt-cache': `${common}
[ "$*" = 'policy mesa-vulkan-drivers' ] || unexpected "$@"
log "apt-cache $*"
echo 'mesa-vulkan-drivers:'
echo '  Version table:'
if grep -qx bookworm-backports $sys/lists; then
  echo '     25.0.7-2~bpo12+1 100'
  echo '        100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages'
fi
echo '     22.3.6-1+deb12u2 500'
echo '        500 http://deb.debian.org/debian bookworm/main amd64 Packages'`,
    'dpkg-query': `${common}
[ "$1 $2" = '-W -f=\${Status}' ] || unexpected "$@"
if grep -qx "$3" $sys/installed; then printf 'install ok installed'; else echo "dpkg-query: no packages found matching $3" >&2; exit 1; fi`,
    'dpkg-deb': `${common}
[ "$1" = -x ] || unexpected "$@"
log "dpkg-deb -x \${2#${project}/} \${3#${project}/}"
mkdir -p "$3/usr/lib/x86_64-linux-gnu" "$3/usr/share/vulkan/icd.d"
touch "$3/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"
echo '{ "ICD": { "library_path": "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so", "api_version": "1.4.305" } }' >"$3/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"`,
    id: `${common}
case "$*" in
  -u) cat $sys/uid ;;
  -un) if [ "$(cat $sys/uid)" = 0 ]; then echo root; else echo dev; fi ;;
  *) unexpected "$@" ;;
esac`,
    sudo: `${common}
IN_SUDO=1 exec "$@"`,
    npm: `${common}
log "npm $*"`,
  };
}

interface Machine {
  /** Packages dpkg has installed. */
  installed?: string[];
  /** A bookworm-backports source in sources.list.d. */
  backportsSource?: boolean;
  /** The suites whose lists apt has (none: an update never ran). */
  lists?: string[];
  /** The backports lists name a .deb the mirror has since replaced. */
  backportsStale?: boolean;
  /** .lavapipe/ unpacked by an earlier run. */
  lavapipe?: boolean;
  uid?: number;
  sudo?: boolean;
  backportsUnreachable?: boolean;
}

/** A machine and a project with a copy of setup.sh in it; `run()` runs the script there. */
function machine(name: string, m: Machine) {
  const sys = join(scratch, name, 'sys');
  const project = join(scratch, name, 'project');
  const bin = join(scratch, name, 'bin');
  for (const dir of [join(sys, 'etc', 'sources.list.d'), join(project, 'scripts'), bin])
    mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(sys, 'etc', 'sources.list'),
    'deb http://mirror.example/debian/ bookworm main\ndeb http://mirror.example/debian-security/ bookworm-security main\n',
  );
  if (m.backportsSource)
    writeFileSync(
      join(sys, 'etc', 'sources.list.d', 'backports.sources'),
      'Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm-backports\nComponents: main\n',
    );
  writeFileSync(join(sys, 'installed'), (m.installed ?? []).map((p) => `${p}\n`).join(''));
  writeFileSync(join(sys, 'lists'), (m.lists ?? []).map((suite) => `${suite}\n`).join(''));
  if (m.backportsStale) writeFileSync(join(sys, 'backports-stale'), '');
  writeFileSync(join(sys, 'uid'), `${m.uid ?? 0}\n`);
  if (m.backportsUnreachable) writeFileSync(join(sys, 'backports-unreachable'), '');
  cpSync(SETUP, join(project, 'scripts', 'setup.sh'));
  if (m.lavapipe) {
    mkdirSync(join(project, '.lavapipe', 'root', 'usr', 'lib', 'x86_64-linux-gnu'), { recursive: true });
    writeFileSync(join(project, '.lavapipe', 'root', 'usr', 'lib', 'x86_64-linux-gnu', 'libvulkan_lvp.so'), '');
    writeFileSync(join(project, '.lavapipe', 'lvp_icd.json'), '{}');
  }
  for (const [tool, body] of Object.entries(standIns(sys, project))) {
    if (tool === 'sudo' && !m.sudo) continue;
    writeFileSync(join(bin, tool), `#!${BASH}\n${body}\n`);
    chmodSync(join(bin, tool), 0o755);
  }
  for (const tool of PLAIN_TOOLS) symlinkSync(which(tool), join(bin, tool));

  return {
    project,
    run() {
      writeFileSync(join(sys, 'log'), '');
      const r = spawnSync(BASH, [join(project, 'scripts', 'setup.sh')], {
        cwd: scratch,
        env: { PATH: bin },
        encoding: 'utf8',
      });
      return {
        status: r.status,
        stderr: r.stderr,
        calls: readFileSync(join(sys, 'log'), 'utf8').split('\n').filter(Boolean),
      };
    },
    read: (path: string) => readFileSync(join(sys, path), 'utf8'),
  };
}

const NPM_CI = 'npm ci --no-audit --no-fund';
const POLICY = 'apt-cache policy mesa-vulkan-drivers';
const download = (user: string) =>
  `apt-get download -qq -o APT::Sandbox::User=${user} mesa-vulkan-drivers/bookworm-backports (in .lavapipe/cache)`;
const UNPACK = `dpkg-deb -x .lavapipe/cache/${DEB} .lavapipe/root`;
const INSTALL = `apt-get install -y -qq ${PACKAGES.join(' ')}`;
const ALL_LISTS = ['bookworm', 'bookworm-security', 'bookworm-backports'];
const UPDATE = `apt-get update -qq (lists: ${ALL_LISTS.join(' ')})`;
/** A machine scripts/setup.sh has set up, but without this project's .lavapipe/. */
const SET_UP: Machine = { installed: PACKAGES, backportsSource: true, lists: ALL_LISTS };

describe('scripts/setup.sh', () => {
  it('sets up a fresh machine as root: adds backports, fetches its lists before using it, then installs; a second run only runs npm ci', () => {
    const m = machine('fresh-root', {});
    const first = m.run();
    expect(first.stderr).not.toMatch(/^[EW]:/m);
    expect(first.calls).toEqual([POLICY, UPDATE, POLICY, download('root'), UNPACK, UPDATE, INSTALL, NPM_CI]);
    expect(first.status).toBe(0);
    expect(m.read('etc/sources.list.d/bookworm-backports.sources')).toBe(
      'Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n',
    );
    expect(JSON.parse(readFileSync(join(m.project, '.lavapipe', 'lvp_icd.json'), 'utf8'))).toEqual({
      file_format_version: '1.0.0',
      ICD: { library_path: './root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so', api_version: '1.4.305' },
    });

    const second = m.run();
    expect(second.calls).toEqual([NPM_CI]);
    expect(second.stderr).toBe('');
    expect(second.status).toBe(0);
  });

  it('sets up a fresh machine as another user through sudo, downloading and unpacking as that user', () => {
    const { status, calls } = machine('fresh-sudo', { uid: 1000, sudo: true }).run();
    expect(calls).toEqual([
      POLICY,
      `sudo ${UPDATE}`,
      POLICY,
      download('dev'),
      UNPACK,
      `sudo ${UPDATE}`,
      `sudo ${INSTALL}`,
      NPM_CI,
    ]);
    expect(status).toBe(0);
  });

  it('stops a user without sudo on a fresh machine with one line, before any apt-get', () => {
    const { status, stderr, calls } = machine('fresh-no-sudo', { uid: 1000 }).run();
    expect(calls).toEqual([]);
    expect(stderr.trim().split('\n').at(-1)).toMatch(
      /^scripts\/setup\.sh: tee .*bookworm-backports\.sources needs root; run it as root or install sudo$/,
    );
    expect(status).toBe(1);
  });

  it('only runs npm ci for a user without sudo on a machine already set up', () => {
    const { status, calls } = machine('set-up-no-sudo', { ...SET_UP, uid: 1000, lavapipe: true }).run();
    expect(calls).toEqual([NPM_CI]);
    expect(status).toBe(0);
  });

  it('unpacks lavapipe into a new clone on a set-up machine for a user without sudo, from the lists apt has', () => {
    const { status, calls } = machine('new-clone-no-sudo', { ...SET_UP, uid: 1000 }).run();
    expect(calls).toEqual([POLICY, download('dev'), UNPACK, NPM_CI]);
    expect(status).toBe(0);
  });

  it('fetches the lists again when old ones name a .deb the mirror no longer has', () => {
    const { status, stderr, calls } = machine('new-clone-stale', { ...SET_UP, backportsStale: true }).run();
    expect(calls).toEqual([POLICY, download('root'), UPDATE, download('root'), UNPACK, NPM_CI]);
    expect(stderr).not.toMatch(/^[EW]:/m);
    expect(status).toBe(0);
  });

  it('fails with one line naming what it needed when the backports mirror cannot be reached', () => {
    const { status, stderr, calls } = machine('unreachable', { backportsUnreachable: true }).run();
    expect(calls).toEqual([POLICY, 'apt-get update -qq (lists: bookworm bookworm-security)', POLICY]);
    expect(stderr.trim().split('\n')).toEqual([
      'scripts/setup.sh: installing lavapipe (Mesa from bookworm-backports) into .lavapipe/',
      expect.stringMatching(/^scripts\/setup\.sh: added bookworm-backports \(http:\/\/mirror\.example\/debian\/\) to /),
      'scripts/setup.sh: lavapipe needs mesa-vulkan-drivers from bookworm-backports, and apt could not read that suite from http://mirror.example/debian/ (check the network or that mirror, then run this script again)',
    ]);
    expect(status).toBe(1);
  });
});
