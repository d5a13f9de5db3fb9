package main

import (
	"archive/zip"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestModuleFiles(t *testing.T) {
	t.Parallel()
	tree := []treeFile{
		{name: "go.mod"},
		{name: "LICENSE"},
		{name: "tracker.go"},
		{name: "internal/keys/keys.go"},
		{name: "cmd/ddbtrack/go.mod"},
		{name: "cmd/ddbtrack/main.go"},
		{name: "cmd/ddbtrack/internal/ops/ops.go"},
		{name: "cmd/tool/main.go"}, // no go.mod of its own: the root's
		{name: "vendor/modules.txt"},
		{name: "internal/vendor/x.go"},
		{name: "vendors/ok.go"},
	}
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{".", []string{"LICENSE", "cmd/tool/main.go", "go.mod", "internal/keys/keys.go", "tracker.go", "vendors/ok.go"}},
		{"cmd/ddbtrack", []string{"go.mod", "internal/ops/ops.go", "main.go"}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, f := range moduleFiles(tree, tc.dir) {
				got = append(got, f.name)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestEscapePath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"github.com/ddbtrack/ddbtrack":   "github.com/ddbtrack/ddbtrack",
		"github.com/BurntSushi/toml":     "github.com/!burnt!sushi/toml",
		"example.com/ALL/caps/and-dash.": "example.com/!a!l!l/caps/and-dash.",
	} {
		require.Equal(t, want, escapePath(in), in)
	}
}

// TestWriteToProxy checks the layout the go command reads from a
// file-based proxy. That the go command accepts it is what `make
// release-check` proves.
func TestWriteToProxy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := []treeFile{{name: "LICENSE", data: []byte("MIT")}, {name: "go.mod", data: []byte("module example.com/M\n")}}
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	require.NoError(t, writeToProxy(dir, proxyRelease{modPath: "example.com/M", version: "v0.1.0", files: files, time: at}))

	v := filepath.Join(dir, "example.com", "!m", "@v")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(v, name))
		require.NoError(t, err)
		return string(b)
	}
	require.Equal(t, "v0.1.0\n", read("list"))
	require.JSONEq(t, `{"Version":"v0.1.0","Time":"2026-11-29T10:00:00Z"}`, read("v0.1.0.info"))
	require.Equal(t, "module example.com/M\n", read("v0.1.0.mod"))

	zr, err := zip.NewReader(bytes.NewReader([]byte(read("v0.1.0.zip"))), int64(len(read("v0.1.0.zip"))))
	require.NoError(t, err)
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"example.com/M@v0.1.0/LICENSE", "example.com/M@v0.1.0/go.mod"}, names)

	err = writeToProxy(t.TempDir(), proxyRelease{modPath: "example.com/m", version: "v0.1.0", files: files[:1]})
	require.ErrorContains(t, err, "has no go.mod")
}

func TestCheckRelease(t *testing.T) {
	t.Parallel()
	license := []byte("MIT")
	root := module{Dir: ".", Path: "github.com/x/y", Requires: map[string]string{}}
	cmd := func(edit func(*module)) module {
		m := module{Dir: "cmd/y", Path: "github.com/x/y/cmd/y", Requires: map[string]string{"github.com/x/y": "v0.1.0", "other.example/z": "v1.0.0"}}
		if edit != nil {
			edit(&m)
		}
		return m
	}
	files := map[string][]byte{"LICENSE": license, "cmd/y/LICENSE": license}
	readFile := func(name string) ([]byte, error) {
		if b, ok := files[name]; ok {
			return b, nil
		}
		return nil, fs.ErrNotExist
	}
	for _, tc := range []struct {
		name string
		mods []module
		read func(string) ([]byte, error)
		want []string
	}{
		{name: "ready", mods: []module{root, cmd(nil)}},
		{
			name: "replace directive",
			mods: []module{root, cmd(func(m *module) { m.Replaces = []string{"github.com/x/y"} })},
			want: []string{"cmd/y/go.mod replaces github.com/x/y: go install refuses a module with replace directives; move them to go.work"},
		},
		{
			name: "requires an older version",
			mods: []module{root, cmd(func(m *module) { m.Requires["github.com/x/y"] = "v0.0.0" })},
			want: []string{"cmd/y requires github.com/x/y v0.0.0, not the release v0.1.0: run `go mod edit -require=github.com/x/y@v0.1.0` in cmd/y and change the replace line in go.work to match"},
		},
		{
			name: "module path does not match its directory",
			mods: []module{root, cmd(func(m *module) { m.Path = "github.com/x/ycmd" })},
			want: []string{"cmd/y/go.mod declares module github.com/x/ycmd, but its tags (cmd/y/v...) only work for github.com/x/y/cmd/y: rename the module or move it"},
		},
		{
			name: "licence missing or different",
			mods: []module{root, cmd(nil), {Dir: "dashboard", Path: "github.com/x/y/dashboard"}},
			read: func(name string) ([]byte, error) {
				if name == "cmd/y/LICENSE" {
					return []byte("Apache"), nil
				}
				return readFile(name)
			},
			want: []string{
				"cmd/y/LICENSE differs from the root LICENSE: copy the root one over it",
				"dashboard has no LICENSE: copy the root LICENSE there, so its module zip carries one",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			read := tc.read
			if read == nil {
				read = readFile
			}
			require.Equal(t, tc.want, checkRelease(tc.mods, "v0.1.0", license, read))
		})
	}
}

func TestCheckVersionOutput(t *testing.T) {
	t.Parallel()
	good := "ddbtrack v0.1.0\n  github.com/x/y v0.1.0\n  built with go1.25.0\n"
	require.NoError(t, checkVersionOutput(good, "github.com/x/y", "v0.1.0"))
	for _, bad := range []string{
		"ddbtrack (devel)\n  github.com/x/y v0.1.0\n",
		"ddbtrack v0.1.0\n  github.com/x/y v0.0.0\n",
		"",
	} {
		require.Error(t, checkVersionOutput(bad, "github.com/x/y", "v0.1.0"), "%q", bad)
	}
}

func TestReadTreeKeepsRegularFilesOnly(t *testing.T) {
	t.Parallel()
	// git archive of a directory with a symbolic link, made by git itself.
	repo := t.TempDir()
	git := func(args ...string) []byte {
		out, err := run(repo, append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t"), "git", args...)
		require.NoError(t, err)
		return out
	}
	git("init", "-q")
	require.NoError(t, os.WriteFile(filepath.Join(repo, "a.go"), []byte("package a\n"), 0o644))
	require.NoError(t, os.Symlink("a.go", filepath.Join(repo, "link.go")))
	git("add", ".")
	git("commit", "-qm", "x")
	tree, err := readTree(bytes.NewReader(git("archive", "--format=tar", "HEAD")))
	require.NoError(t, err)
	require.Equal(t, []treeFile{{name: "a.go", data: []byte("package a\n")}}, tree)

	_, err = readTree(bytes.NewReader([]byte("not a tar stream, and long enough to be read as a header block")))
	require.Error(t, err)
}
