//go:build !linux

package chirpy_test

import "os/exec"

// dieWithParent does nothing where the kernel cannot tie the server's life
// to the test binary's; the tests stop the server themselves.
func dieWithParent(*exec.Cmd) {}
