// Command roomctl controls roomd from a shell over its local API.
//
//	roomctl [flags] status | devices | join URL | leave | events
//
// Exit codes: 0 success; 1 roomd refused or failed the request; 2 usage
// error; 3 roomd could not be reached.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK          = 0
	exitRefused     = 1
	exitUsage       = 2
	exitUnreachable = 3
)

var errUsage = errors.New("usage")
