// Command shape prints two of the measures that issue 13 set for the
// code's shape, so that a note quoting them can be checked:
//
//   - the exported identifiers of the library's root package, not counting
//     struct fields: types, functions, constants, variables, methods of
//     exported types and the methods of exported interfaces;
//   - the functions longer than a limit (60 lines) in the shipped code of
//     every module and in the examples, tests and development tools left
//     out, longest first.
//
// Usage, from the repository's root:
//
//	go run ./internal/dev/shape [-max-lines 60]
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	maxLines := flag.Int("max-lines", 60, "report functions longer than this")
	flag.Parse()
	names, err := exported(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "shape:", err)
		os.Exit(1)
	}
	fmt.Printf("exported identifiers of the root package: %d\n", len(names))
	long, err := longFuncs(".", *maxLines)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shape:", err)
		os.Exit(1)
	}
	fmt.Printf("functions over %d lines in shipped code and examples: %d\n", *maxLines, len(long))
	for _, f := range long {
		fmt.Printf("  %4d %s\n", f.lines, f.name)
	}
}

// shipped reports whether a Go file is shipped code or an example: not a
// test, not a development tool, not a dependency.
func shipped(path string) bool {
	if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
		return false
	}
	for _, dir := range strings.Split(filepath.Dir(path), string(filepath.Separator)) {
		switch dir {
		case "node_modules", "testdata", "dev":
			return false
		}
	}
	return true
}

// exported lists the exported identifiers of the package in dir.
func exported(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	fset := token.NewFileSet()
	for _, e := range entries {
		if e.IsDir() || !shipped(e.Name()) {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			names = append(names, declNames(d)...)
		}
	}
	sort.Strings(names)
	return names, nil
}

// declNames returns the exported names a declaration adds.
func declNames(d ast.Decl) []string {
	var names []string
	switch d := d.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() {
			return nil
		}
		if d.Recv == nil {
			return []string{d.Name.Name}
		}
		if recv := receiverType(d.Recv.List[0].Type); ast.IsExported(recv) {
			return []string{recv + "." + d.Name.Name}
		}
	case *ast.GenDecl:
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.TypeSpec:
				if !s.Name.IsExported() {
					continue
				}
				names = append(names, s.Name.Name)
				if it, ok := s.Type.(*ast.InterfaceType); ok {
					for _, m := range it.Methods.List {
						for _, n := range m.Names {
							if n.IsExported() {
								names = append(names, s.Name.Name+"."+n.Name)
							}
						}
					}
				}
			case *ast.ValueSpec:
				for _, n := range s.Names {
					if n.IsExported() {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	return names
}

// receiverType returns the name of a method's receiver type.
func receiverType(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

type funcLen struct {
	name  string
	lines int
}

// longFuncs returns the functions of shipped code below root that are
// longer than max lines, longest first.
func longFuncs(root string, max int) ([]funcLen, error) {
	var long []funcLen
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !shipped(path) {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			if n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; n > max {
				long = append(long, funcLen{path + ": " + fd.Name.Name, n})
			}
		}
		return nil
	})
	sort.Slice(long, func(i, j int) bool { return long[i].lines > long[j].lines })
	return long, err
}
