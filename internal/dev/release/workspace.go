package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// module is one module of the workspace, as its go.mod declares it.
type module struct {
	Dir      string // slash-separated, relative to the repository root: "." or "cmd/ddbtrack"
	Path     string
	Go       string
	Requires map[string]string // module path to version
	Replaces []string          // the replaced paths, which a published go.mod must not have
}

// tagPrefix is what comes before the version in the module's git tags:
// nothing for the root module, and the directory and a slash for a nested
// one, as the go command expects (https://go.dev/ref/mod#vcs-version).
func (m module) tagPrefix() string {
	if m.Dir == "." {
		return ""
	}
	return m.Dir + "/"
}

// readWorkspace lists the modules that repoDir's go.work uses, reading
// go.work and every go.mod through the go command's own parser.
func readWorkspace(repoDir string) ([]module, error) {
	var work struct {
		Use []struct{ DiskPath string }
	}
	if err := goJSON(repoDir, &work, "work", "edit", "-json"); err != nil {
		return nil, fmt.Errorf("read go.work: %w", err)
	}
	var mods []module
	for _, use := range work.Use {
		dir := path.Clean(filepath.ToSlash(use.DiskPath))
		var gomod struct {
			Module  struct{ Path string }
			Go      string
			Require []struct{ Path, Version string }
			Replace []struct{ Old struct{ Path string } }
		}
		if err := goJSON(repoDir, &gomod, "mod", "edit", "-json", filepath.Join(filepath.FromSlash(dir), "go.mod")); err != nil {
			return nil, fmt.Errorf("read %s/go.mod: %w", dir, err)
		}
		m := module{Dir: dir, Path: gomod.Module.Path, Go: gomod.Go, Requires: map[string]string{}}
		for _, r := range gomod.Require {
			m.Requires[r.Path] = r.Version
		}
		for _, r := range gomod.Replace {
			m.Replaces = append(m.Replaces, r.Old.Path)
		}
		mods = append(mods, m)
	}
	if len(mods) == 0 || mods[0].Dir != "." {
		return nil, fmt.Errorf("go.work in %s must use the root module (.) first", repoDir)
	}
	return mods, nil
}

// checkRelease reports what would make the modules fail for a user once
// tagged at version, one problem per line, each with its fix.
func checkRelease(mods []module, version string, license []byte, readFile func(string) ([]byte, error)) []string {
	var problems []string
	root := mods[0].Path
	inRepo := map[string]bool{}
	for _, m := range mods {
		inRepo[m.Path] = true
	}
	for _, m := range mods {
		if want := path.Join(root, m.Dir); m.Dir != "." && m.Path != want {
			problems = append(problems, fmt.Sprintf("%s/go.mod declares module %s, but its tags (%sv...) only work for %s: rename the module or move it",
				m.Dir, m.Path, m.tagPrefix(), want))
		}
		if len(m.Replaces) > 0 {
			problems = append(problems, fmt.Sprintf("%s/go.mod replaces %s: go install refuses a module with replace directives; move them to go.work",
				m.Dir, strings.Join(m.Replaces, ", ")))
		}
		for _, dep := range slices.Sorted(maps.Keys(m.Requires)) {
			if v := m.Requires[dep]; inRepo[dep] && v != version {
				problems = append(problems, fmt.Sprintf("%s requires %s %s, not the release %s: run `go mod edit -require=%s@%s` in %s and change the replace line in go.work to match",
					m.Dir, dep, v, version, dep, version, m.Dir))
			}
		}
		// Each module is zipped on its own, so each needs its own copy
		// of the licence for the zip to carry one.
		got, err := readFile(path.Join(m.Dir, "LICENSE"))
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s has no LICENSE: copy the root LICENSE there, so its module zip carries one", m.Dir))
		case !bytes.Equal(got, license):
			problems = append(problems, fmt.Sprintf("%s/LICENSE differs from the root LICENSE: copy the root one over it", m.Dir))
		}
	}
	return problems
}

// goJSON runs a go command that prints JSON, in dir, and decodes it.
func goJSON(dir string, v any, args ...string) error {
	out, err := run(dir, nil, "go", args...)
	if err != nil {
		return err
	}
	return json.Unmarshal(out, v)
}

// readRepoFile reads a file of the checked-out clone.
func readRepoFile(repoDir string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(name)))
	}
}
