package main

import "syscall"

// hideEnvironment makes the serving process non-dumpable. Its plugins run
// as the same user, and /proc/<pid>/environ and /proc/<pid>/mem of a
// dumpable process are readable by that user: a plugin started with only
// an allowlisted environment could otherwise read the hub's, with every
// connector's secret. Non-dumpable, they belong to root. (It also turns
// off core dumps and same-user ptrace for the hub, which is what is
// wanted of a process holding secrets.)
func hideEnvironment() error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
