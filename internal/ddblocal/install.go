package ddblocal

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// npmFiles pins dynalite and every package it depends on. They are copies of
// the repository's package.json and package-lock.json (a test keeps them
// equal), embedded so that a module that is not this repository can install
// exactly the server this repository's tests run against.
//
//go:embed npm/package.json npm/package-lock.json
var npmFiles embed.FS

const (
	// installTimeout bounds one `npm ci` of dynalite. From npm's cache it
	// takes a few seconds; the first download on a slow network longer.
	installTimeout = 5 * time.Minute

	// staleLock is the age at which an install lock is taken to be left
	// over from a process that died while installing: no live holder keeps
	// it longer than installTimeout.
	staleLock = installTimeout + time.Minute

	// lockPoll is how often a process waiting for another's install looks
	// again.
	lockPoll = 250 * time.Millisecond
)

// scriptPath is where dynalite's command-line script lives inside a
// node_modules directory. Running it with node directly, rather than through
// node_modules/.bin, works the same on every OS, Windows included, where
// .bin holds shell wrappers.
var scriptPath = filepath.Join("node_modules", "dynalite", "cli.js")

// DynaliteVersion returns the dynalite version that ddblocal installs when it
// finds none: the one pinned in the repository's package.json.
func DynaliteVersion() string {
	pinned.once.Do(loadPins)
	return pinned.version
}

var pinned struct {
	once    sync.Once
	version string
	dir     string // The cache directory's name: version plus a hash of the lock.
}

func loadPins() {
	pkg, err := npmFiles.ReadFile("npm/package.json")
	if err != nil {
		panic(err) // Embedded at build time: it cannot be missing.
	}
	var manifest struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if err := json.Unmarshal(pkg, &manifest); err != nil {
		panic(fmt.Sprintf("ddblocal: embedded package.json: %v", err))
	}
	lock, err := npmFiles.ReadFile("npm/package-lock.json")
	if err != nil {
		panic(err)
	}
	pinned.version = manifest.DevDependencies["dynalite"]
	// The hash makes a changed lock file (a dependency bumped under the same
	// dynalite version) install into a new directory instead of reusing a
	// tree that no longer matches it.
	pinned.dir = fmt.Sprintf("dynalite-%s-%08x", pinned.version, crc32.ChecksumIEEE(append(pkg, lock...)))
}

// findDynalite returns the path of dynalite's cli.js. It looks, in order:
//
//  1. in node_modules in the working directory and its parents, which covers
//     `go test` in any package of this repository after `npm ci`, and a
//     user's module that added dynalite to its own package.json;
//  2. in node_modules in the main module's directory and its parents, which
//     covers `go run` from elsewhere inside a module;
//  3. in the user's cache directory, where an earlier run installed the
//     pinned version, installing it there now if it is missing.
//
// So a module that is not this repository needs only Node.js with npm: the
// first test that needs a server installs dynalite once per machine.
func findDynalite(ctx context.Context) (string, error) {
	if wd, err := os.Getwd(); err == nil {
		if script, ok := searchUp(wd, scriptPath); ok {
			return script, nil
		}
	}
	// Only ask the go command when the cheap walk failed: it costs a
	// process start.
	if out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output(); err == nil {
		gomod := strings.TrimSpace(string(out))
		if gomod != "" && gomod != os.DevNull {
			if script, ok := searchUp(filepath.Dir(gomod), scriptPath); ok {
				return script, nil
			}
		}
	}
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	return installDynalite(ctx, dir)
}

// cacheDir is the directory that holds the pinned dynalite: a directory per
// pin under the user's cache directory (~/.cache on Linux,
// ~/Library/Caches on macOS, %LocalAppData% on Windows), so every module on
// the machine shares one installation.
func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("ddblocal: dynalite is not installed and there is no cache directory to install it into (%v): "+
			"set HOME, or run `npm install --save-dev dynalite@%s` in your module", err, DynaliteVersion())
	}
	pinned.once.Do(loadPins)
	return filepath.Join(base, "ddbtrack", pinned.dir), nil
}

func searchUp(dir, rel string) (string, bool) {
	for {
		candidate := filepath.Join(dir, rel)
		if info, err := os.Stat(candidate); err == nil && !info.IsDir() {
			return candidate, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// installDynalite makes sure dir holds the pinned dynalite and returns the
// path of its cli.js.
//
// Test binaries run in parallel (`go test ./...` starts one per package), and
// on a fresh machine each of them may find dynalite missing. A lock file next
// to dir lets one of them install while the others wait for it. The install
// itself goes to a temporary directory that is renamed to dir only once
// complete, so a process killed halfway never leaves a dir that looks
// installed; the lock only saves duplicate downloads.
func installDynalite(ctx context.Context, dir string) (string, error) {
	script := filepath.Join(dir, scriptPath)
	if fileExists(script) {
		return script, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("ddblocal: dynalite is not installed, and npm, which would install it into %s, is not on PATH: "+
			"install Node.js 20 or newer with npm", dir)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("ddblocal: create the directory for dynalite: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another process may have installed it while this one waited.
	if fileExists(script) {
		return script, nil
	}

	tmp, err := os.MkdirTemp(parent, filepath.Base(dir)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("ddblocal: install dynalite: %w", err)
	}
	defer os.RemoveAll(tmp) // A no-op once renamed.
	if err := npmCI(ctx, npm, tmp, dir); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// A process that ignored a stale-looking lock may have won the
		// race; its installation is as good as this one.
		if fileExists(script) {
			return script, nil
		}
		return "", fmt.Errorf("ddblocal: install dynalite: %w", err)
	}
	return script, nil
}

// lockFile creates path exclusively, waiting while another process holds it,
// and returns the function that removes it. A lock older than staleLock is
// taken over: its holder must have died, since a live one gives up after
// installTimeout.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "pid %d\n", os.Getpid())
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("ddblocal: lock %s: %w", path, err)
		}
		if info, err := os.Stat(path); err == nil && time.Since(info.ModTime()) > staleLock {
			os.Remove(path)
			continue
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ddblocal: another process is installing dynalite and holds %s; gave up waiting (%w); "+
				"if no process is installing, remove the file", path, context.Cause(ctx))
		case <-time.After(lockPoll):
		}
	}
}

func fileExists(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir()
}

// npmCI installs the pinned dynalite into tmp, on its way to dir.
func npmCI(ctx context.Context, npm, tmp, dir string) error {
	for _, name := range []string{"package.json", "package-lock.json"} {
		b, _ := npmFiles.ReadFile("npm/" + name)
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return fmt.Errorf("ddblocal: install dynalite: %w", err)
		}
	}
	// npm ci installs exactly the lock file's tree and checks each
	// package's integrity hash. --prefer-offline uses npm's cache without
	// asking the registry when the packages are there. --ignore-scripts
	// skips the optional native build of an on-disk store that dynalite
	// does not need in memory.
	fmt.Fprintf(os.Stderr, "ddblocal: installing dynalite %s into %s (once per machine)\n", DynaliteVersion(), dir)
	cmd := exec.CommandContext(ctx, npm, "ci", "--prefix", tmp, "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts")
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ddblocal: installing dynalite %s into %s failed (%v): %s\n"+
			"Fix the cause above, or install it yourself: `npm install --save-dev dynalite@%s` in your module",
			DynaliteVersion(), dir, errors.Join(err, context.Cause(ctx)), bytes.TrimSpace(out), DynaliteVersion())
	}
	if !fileExists(filepath.Join(tmp, scriptPath)) {
		return fmt.Errorf("ddblocal: npm ci in %s succeeded but left no %s", tmp, scriptPath)
	}
	return nil
}
