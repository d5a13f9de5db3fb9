// Package devenv answers questions about the development machine that
// more than one internal/dev program asks.
package devenv

import "os/exec"

// MotoPython returns the Python interpreter that the tests start moto
// with, and whether moto's server imports in it. Like the tests, it looks
// for python3 before python, because on older systems python is Python 2,
// which moto does not support, and it passes -I so that the user's site
// directory and PYTHON* variables cannot change the answer. With no Python
// at all it returns "python3", the name to install.
func MotoPython() (string, bool) {
	for _, name := range []string{"python3", "python"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, exec.Command(path, "-I", "-c", "import moto.server").Run() == nil
		}
	}
	return "python3", false
}
