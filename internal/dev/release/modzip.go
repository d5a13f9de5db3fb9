package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// treeFile is one regular file of the repository at the release commit.
type treeFile struct {
	name string // slash-separated, relative to the repository root
	data []byte
}

// readTree reads the regular files of a tar stream made by git archive.
// Symbolic links and anything else irregular are left out, as the go
// command leaves them out of module zips: they do not travel between
// operating systems.
func readTree(r io.Reader) ([]treeFile, error) {
	var files []treeFile
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read git archive: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read %s from git archive: %w", hdr.Name, err)
		}
		files = append(files, treeFile{name: hdr.Name, data: data})
	}
}

// moduleFiles picks the files of the module rooted at dir ("." for the
// repository root) by the rules the go command follows when it zips a
// module from a repository (https://go.dev/ref/mod#zip-files): a file
// belongs to the module whose go.mod is in its nearest directory that has
// one, so nested modules are left out of their parent; and files in
// directories named vendor are left out, because only a main module's
// vendor directory is ever used. The names it returns are relative to dir.
func moduleFiles(files []treeFile, dir string) []treeFile {
	roots := map[string]bool{}
	for _, f := range files {
		if path.Base(f.name) == "go.mod" {
			roots[path.Dir(f.name)] = true
		}
	}
	var out []treeFile
	for _, f := range files {
		if nearestRoot(roots, f.name) != dir {
			continue
		}
		rel := f.name
		if dir != "." {
			rel = strings.TrimPrefix(f.name, dir+"/")
		}
		if inVendor(rel) {
			continue
		}
		out = append(out, treeFile{name: rel, data: f.data})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// nearestRoot returns the closest directory above name that holds a
// go.mod, or "" when none does.
func nearestRoot(roots map[string]bool, name string) string {
	for dir := path.Dir(name); ; dir = path.Dir(dir) {
		if roots[dir] {
			return dir
		}
		if dir == "." {
			return ""
		}
	}
}

func inVendor(rel string) bool {
	dirs := strings.Split(path.Dir(rel), "/")
	for _, d := range dirs {
		if d == "vendor" {
			return true
		}
	}
	return false
}

// proxyRelease is one module version laid out for a file-based proxy.
type proxyRelease struct {
	modPath, version string
	files            []treeFile // from moduleFiles
	time             time.Time  // the commit time, reported in the .info file
}

// writeToProxy writes the four files a GOPROXY=file:// proxy serves for a
// version (https://go.dev/ref/mod#goproxy-protocol): the version list, the
// .info metadata, the go.mod, and the zip whose every entry starts with
// module@version/.
func writeToProxy(proxyDir string, r proxyRelease) error {
	var goMod []byte
	for _, f := range r.files {
		if f.name == "go.mod" {
			goMod = f.data
		}
	}
	if goMod == nil {
		return fmt.Errorf("%s@%s has no go.mod at its root", r.modPath, r.version)
	}
	zipData, err := moduleZip(r.modPath, r.version, r.files)
	if err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{r.version, r.time.UTC()})
	if err != nil {
		return err
	}

	dir := filepath.Join(proxyDir, filepath.FromSlash(escapePath(r.modPath)), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"list":              []byte(r.version + "\n"),
		r.version + ".info": info,
		r.version + ".mod":  goMod,
		r.version + ".zip":  zipData,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// moduleZip builds a module zip. The go command checks every entry when it
// extracts one (names, case collisions, sizes), so a mistake here shows
// up as a failed go install rather than passing unnoticed.
func moduleZip(modPath, version string, files []treeFile) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	prefix := modPath + "@" + version + "/"
	for _, f := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + f.name, Method: zip.Deflate})
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", f.name, err)
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, fmt.Errorf("zip %s: %w", f.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// escapePath turns a module path into the form proxies use in URLs and
// file names: each upper-case letter becomes '!' and its lower case, so
// that case-insensitive file systems keep distinct modules apart.
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
