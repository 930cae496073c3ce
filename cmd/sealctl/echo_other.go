//go:build !linux

package main

// echoOff does nothing here: after Ctrl-Z and fg the prompt may echo.
func echoOff(int) error { return nil }
