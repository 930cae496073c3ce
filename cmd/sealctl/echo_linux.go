package main

import "golang.org/x/sys/unix"

// echoOff turns the terminal fd's echo off again: a shell that stopped
// sealctl at its prompt (Ctrl-Z) turned it back on, and does not turn it
// off when the job is resumed.
func echoOff(fd int) error {
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	tio.Lflag &^= unix.ECHO
	return unix.IoctlSetTermios(fd, unix.TCSETS, tio)
}
