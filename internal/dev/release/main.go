// Command release proves that a commit can be released: that once its
// modules are tagged and published, a user can install the command with
// `go install github.com/ddbtrack/ddbtrack/cmd/ddbtrack@VERSION` and build
// against the library with `go get`.
//
// Nothing is published, and nothing is left behind. It clones the
// repository into a temporary directory, tags every module of go.work at
// the version there (v0.1.0, cmd/ddbtrack/v0.1.0, ...), and zips each
// module into a file-based module proxy laid out as proxy.golang.org would
// serve it. It then installs the command from that proxy with an empty
// module cache, as a user on a fresh machine would, runs it, and builds a
// user module that requires the library.
//
// Usage:
//
//	go run ./internal/dev/release [-version v0.1.0] [-ref HEAD] [-keep]
//
// By default it checks the working tree as it is, so that `make test` tests
// the edits in progress; -ref checks a commit instead, such as the one
// about to be tagged.
//
// Modules that are not this repository's come through the machine's module
// cache and then proxy.golang.org. `make release-check` runs it; RELEASING.md
// says how a release is cut.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func main() {
	version := flag.String("version", "", "the version to release, e.g. v0.1.0; defaults to the version the modules require of each other")
	ref := flag.String("ref", "", "the commit to release; defaults to the working tree as it is, uncommitted and untracked files included")
	keep := flag.Bool("keep", false, "keep the temporary directory (clone, proxy, module cache) and print its path")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "release: unexpected arguments; usage: go run ./internal/dev/release [-version vX.Y.Z] [-ref REF] [-keep]")
		os.Exit(2)
	}
	if err := check(*version, *ref, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// semver accepts the release versions this project uses. Pre-releases
// are allowed so a candidate can be checked; build metadata is not,
// because the go command rejects it in module versions.
var semver = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

func check(version, ref string, keep bool) error {
	repo, err := output(".", nil, "git", "rev-parse", "--show-toplevel")
	if err != nil {
		return fmt.Errorf("run it inside the repository: %w", err)
	}
	tmp, err := os.MkdirTemp("", "ddbtrack-release-")
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Fprintf(os.Stderr, "Kept %s (clone in src, proxy in proxy, installed command in bin)\n", tmp)
	} else {
		defer removeAll(tmp)
	}
	var commit string
	if ref == "" {
		commit, err = snapshot(repo, tmp)
		if err != nil {
			return fmt.Errorf("snapshot the working tree: %w", err)
		}
	} else if commit, err = output(repo, nil, "git", "rev-parse", "--verify", ref+"^{commit}"); err != nil {
		return fmt.Errorf("-ref %s is not a commit: %w", ref, err)
	}
	src := filepath.Join(tmp, "src")
	proxy := filepath.Join(tmp, "proxy")

	// A clone, so the tags live and die with the temporary directory and
	// the repository's own tags and working tree are never touched.
	step("Cloning %s at %s", repo, short(commit))
	if _, err := run(tmp, nil, "git", "clone", "--quiet", "--shared", "--no-checkout", repo, src); err != nil {
		return err
	}
	if _, err := run(src, nil, "git", "checkout", "--quiet", "--detach", commit); err != nil {
		return err
	}
	mods, err := readWorkspace(src)
	if err != nil {
		return err
	}
	if version == "" {
		if version, err = requiredVersion(mods); err != nil {
			return err
		}
	}
	if !semver.MatchString(version) {
		return fmt.Errorf("-version %q is not a semantic version such as v0.1.0", version)
	}
	license, err := os.ReadFile(filepath.Join(src, "LICENSE"))
	if err != nil {
		return fmt.Errorf("the repository has no LICENSE at its root: %w", err)
	}
	if problems := checkRelease(mods, version, license, readRepoFile(src)); len(problems) > 0 {
		return fmt.Errorf("%s cannot be released as %s:\n  %s", short(commit), version, strings.Join(problems, "\n  "))
	}

	step("Tagging %d modules at %s in the clone and zipping them into a file proxy", len(mods), version)
	commitTime, err := output(src, nil, "git", "show", "-s", "--format=%ct", commit)
	if err != nil {
		return err
	}
	secs, err := strconv.ParseInt(commitTime, 10, 64)
	if err != nil {
		return fmt.Errorf("commit time %q: %w", commitTime, err)
	}
	for _, m := range mods {
		tag := m.tagPrefix() + version
		if _, err := run(src, nil, "git", "tag", tag, commit); err != nil {
			return err
		}
		// The same flags the go command passes when it zips a module
		// from git, so line endings come out as they would for users.
		tarball, err := run(src, nil, "git", "-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=tar", tag)
		if err != nil {
			return err
		}
		tree, err := readTree(bytes.NewReader(tarball))
		if err != nil {
			return err
		}
		files := moduleFiles(tree, m.Dir)
		if err := writeToProxy(proxy, proxyRelease{modPath: m.Path, version: version, files: files, time: time.Unix(secs, 0)}); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "    %-40s %s@%s, %d files, go %s\n", tag, m.Path, version, len(files), m.Go)
	}

	env, err := userEnv(tmp, proxy, mods[0].Path)
	if err != nil {
		return err
	}
	cmdPath := mods[0].Path + "/cmd/ddbtrack"
	step("go install %s@%s, with an empty module cache", cmdPath, version)
	if _, err := run(tmp, env, "go", "install", cmdPath+"@"+version); err != nil {
		return err
	}
	bin := filepath.Join(tmp, "bin", "ddbtrack")
	out, err := run(tmp, env, bin, "version")
	if err != nil {
		return err
	}
	fmt.Fprint(os.Stderr, indent(string(out)))
	if err := checkVersionOutput(string(out), mods[0].Path, version); err != nil {
		return err
	}
	if _, err := run(tmp, env, bin, "help"); err != nil {
		return fmt.Errorf("the installed command's help failed: %w", err)
	}

	step("A user module: go get %s@%s, go mod tidy, go build", mods[0].Path, version)
	goLine, err := userModule(filepath.Join(tmp, "user"), env, mods[0].Path, version)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "    the user's go.mod now says go %s (the library's says go %s)\n", goLine, mods[0].Go)
	if goLine != mods[0].Go {
		return fmt.Errorf("go mod tidy moved the user's module to go %s, past the library's go %s: a dependency requires a newer Go than the library says", goLine, mods[0].Go)
	}
	step("OK: %s can be released as %s", short(commit), version)
	return nil
}

// snapshot commits the working tree as it is, untracked files included and
// ignored ones left out, and returns the commit. It goes through an index
// file of its own in tmp, so the repository's index, HEAD, branches and
// tags stay as they are; the new objects are unreachable, and git's
// garbage collection removes them in time.
func snapshot(repo, tmp string) (string, error) {
	index := filepath.Join(tmp, "index")
	// Starting from a copy of the real index lets git skip hashing the
	// files whose timestamps say they have not changed.
	if real, err := output(repo, nil, "git", "rev-parse", "--path-format=absolute", "--git-path", "index"); err == nil {
		if data, err := os.ReadFile(real); err == nil {
			if err := os.WriteFile(index, data, 0o644); err != nil {
				return "", err
			}
		}
	}
	env := append(os.Environ(),
		"GIT_INDEX_FILE="+index,
		// commit-tree needs an identity; a machine may have none.
		"GIT_AUTHOR_NAME=ddbtrack release check", "GIT_AUTHOR_EMAIL=release-check@ddbtrack.invalid",
		"GIT_COMMITTER_NAME=ddbtrack release check", "GIT_COMMITTER_EMAIL=release-check@ddbtrack.invalid",
	)
	if _, err := run(repo, env, "git", "add", "--all"); err != nil {
		return "", err
	}
	tree, err := output(repo, env, "git", "write-tree")
	if err != nil {
		return "", err
	}
	return output(repo, env, "git", "commit-tree", "-p", "HEAD", "-m", "The working tree, for a release check", tree)
}

// requiredVersion is the version the modules require of each other, which
// is the one they are about to be released at.
func requiredVersion(mods []module) (string, error) {
	root := mods[0].Path
	for _, m := range mods[1:] {
		if v, ok := m.Requires[root]; ok {
			return v, nil
		}
	}
	return "", errors.New("no module requires the root module, so the version cannot be guessed: pass -version")
}

// userEnv is the environment of a user on a fresh machine whose proxy
// serves the release: an empty module cache and bin directory in tmp,
// this repository's modules from the file proxy, and everything else
// from the machine's module cache (so the check needs no network for
// what was already downloaded) or proxy.golang.org.
func userEnv(tmp, proxy, rootPath string) ([]string, error) {
	cache, err := output(".", nil, "go", "env", "GOMODCACHE")
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "GOPROXY", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOMODCACHE", "GOBIN", "GOWORK", "GOFLAGS":
		default:
			env = append(env, kv)
		}
	}
	return append(env,
		"GOPROXY="+fileURL(proxy)+","+fileURL(filepath.Join(cache, "cache", "download"))+",https://proxy.golang.org",
		// The checksum database has never seen these versions; every
		// other module is still checked against it and go.sum.
		"GONOSUMDB="+rootPath,
		"GOMODCACHE="+filepath.Join(tmp, "modcache"),
		"GOBIN="+filepath.Join(tmp, "bin"),
		// Outside the repository no go.work applies; saying so guards
		// against a GOWORK in the caller's environment.
		"GOWORK=off",
		// The module cache is read-only by default, which would stop the
		// temporary directory from being removed.
		"GOFLAGS=-modcacherw",
	), nil
}

// userModule makes a module outside the repository that imports the
// library, as a user's would, and returns the go directive that go get
// and go mod tidy leave in it. It starts at go 1.21, the first release
// that understands toolchain requirements, so any raise is visible.
func userModule(dir string, env []string, rootPath, version string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"go.mod": "module example.com/user\n\ngo 1.21\n",
		// A blank import compiles the whole library without tying the
		// check to an API that is still changing.
		"main.go": "package main\n\nimport _ \"" + rootPath + "\"\n\nfunc main() {}\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	for _, args := range [][]string{
		{"get", rootPath + "@" + version},
		{"mod", "tidy"},
		{"build", "./..."},
	} {
		if _, err := run(dir, env, "go", args...); err != nil {
			return "", err
		}
	}
	var gomod struct{ Go, Toolchain string }
	if err := goJSON(dir, &gomod, "mod", "edit", "-json"); err != nil {
		return "", err
	}
	return gomod.Go, nil
}

// checkVersionOutput makes sure the installed command knows its version,
// which the go command records only when it builds from a module
// version: a checkout would say (devel).
func checkVersionOutput(out, rootPath, version string) error {
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || lines[0] != "ddbtrack "+version {
		return fmt.Errorf("ddbtrack version printed %q first, want %q", lines[0], "ddbtrack "+version)
	}
	if want := "  " + rootPath + " " + version; !strings.Contains(out, want+"\n") {
		return fmt.Errorf("ddbtrack version does not list the library as %q:\n%s", strings.TrimSpace(want), out)
	}
	return nil
}

// run runs a command in dir and returns its standard output. A failure
// carries the command line and its standard error, which is where the go
// command explains itself.
func run(dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s (in %s): %w\n%s", name, strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func output(dir string, env []string, name string, args ...string) (string, error) {
	out, err := run(dir, env, name, args...)
	return strings.TrimSpace(string(out)), err
}

// removeAll removes the temporary directory. A failure only leaves
// litter in the system's temporary directory, so it is reported, not
// fatal.
func removeAll(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(os.Stderr, "release: could not remove %s: %v\n", dir, err)
	}
}

func fileURL(dir string) string { return "file://" + filepath.ToSlash(dir) }

func step(format string, args ...any) { fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...) }

func short(commit string) string { return commit[:min(12, len(commit))] }

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
