package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// admin runs `roomctl admin …`: the PIN that guards the kiosk's settings.
func (a *app) admin(ctx context.Context, args []string) error {
	sub := "status"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	if err := noArgs(args); err != nil {
		return err
	}
	switch sub {
	case "status":
		st, err := a.client.AdminState(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return json.NewEncoder(a.out).Encode(st)
		}
		tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
		switch {
		case !st.PINSet:
			fmt.Fprintln(tw, "PIN:\tnot set (the kiosk's settings are locked; set one with `roomctl admin set-pin`)")
		case st.Locked:
			fmt.Fprintf(tw, "PIN:\tset, locked after wrong PINs until %s (clear with `roomctl admin unlock`)\n", st.LockedUntil.Local().Format(time.DateTime))
		default:
			fmt.Fprintf(tw, "PIN:\tset, %d attempts before a lock\n", st.AttemptsLeft)
		}
		return tw.Flush()
	case "set-pin":
		pin, err := readPIN(a.in, a.errOut)
		if err != nil {
			return err
		}
		if err := a.client.SetAdminPIN(ctx, "", pin); err != nil {
			return err
		}
		fmt.Fprintln(a.errOut, "PIN set; open admin sessions have ended")
		return nil
	case "unlock":
		if err := a.client.ClearAdminLockout(ctx); err != nil {
			return err
		}
		fmt.Fprintln(a.errOut, "lock cleared")
		return nil
	case "settings":
		s, err := a.client.Settings(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(a.out)
		if !a.json {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(s)
	}
	return fmt.Errorf("%w: admin takes status, set-pin, unlock or settings; not %q", errUsage, sub)
}

// readPIN reads the new PIN: from a terminal twice without echo, else one
// line of in (for scripts: `echo 4711 | roomctl admin set-pin`). The PIN is
// never an argument, where ps and the shell history would show it.
func readPIN(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok {
		if restore, err := noEcho(int(f.Fd())); err == nil {
			defer restore()
			r := bufio.NewReader(f)
			fmt.Fprint(prompt, "New admin PIN (4 to 12 digits): ")
			first, err := readLine(r)
			fmt.Fprintln(prompt)
			if err != nil {
				return "", err
			}
			fmt.Fprint(prompt, "Again: ")
			second, err := readLine(r)
			fmt.Fprintln(prompt)
			if err != nil {
				return "", err
			}
			if first != second {
				return "", fmt.Errorf("%w: the two PINs differ", errUsage)
			}
			return first, nil
		}
	}
	pin, err := readLine(bufio.NewReader(in))
	if err != nil {
		return "", err
	}
	if pin == "" {
		return "", fmt.Errorf("%w: send the new PIN on standard input", errUsage)
	}
	return pin, nil
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		if err == io.EOF {
			return "", nil
		}
		return "", fmt.Errorf("read the PIN: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// noEcho turns the terminal's echo off; it fails on anything but a
// terminal.
func noEcho(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ECHONL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
