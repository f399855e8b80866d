// Command fleetd is the fleet server: the device API rooms enroll and check
// in with (mTLS) and the web console IT staff manage them from.
//
//	fleetd serve -data DIR [-postgres DSN] [-device-listen ADDR] [-console-listen ADDR] [-server-name NAME,…]
//	fleetd useradd -data DIR [-postgres DSN] -username NAME [-role admin|viewer]   (password on stdin)
//	fleetd ca-fingerprint -data DIR    (the SHA-256 rooms pin in [fleet] ca_sha256)
//	fleetd release init|add|timestamp|list|root|rotate ...   (the update release repository; fleetd release -h)
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/atriumroom/atrium/provisioning/fleet/ca"
	"github.com/atriumroom/atrium/provisioning/fleet/console"
	"github.com/atriumroom/atrium/provisioning/fleet/server"
	"github.com/atriumroom/atrium/provisioning/fleet/store"
)

const usage = `usage:
  fleetd serve -data DIR [-postgres DSN] [-device-listen ADDR] [-console-listen ADDR]
               [-server-name NAME,...] [-console-cert FILE -console-key FILE] [-checkin 60s]
               [-updates DIR [-timestamp-keys DIR]]
  fleetd useradd -data DIR [-postgres DSN] -username NAME [-role admin|viewer]
               (reads the password from standard input)
  fleetd ca-fingerprint -data DIR
  fleetd release init|add|timestamp|list|root|rotate ...   (fleetd release -h)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fleetd:", err)
		if errors.Is(err, errUsage) {
			if len(os.Args) > 1 && os.Args[1] == "release" {
				fmt.Fprint(os.Stderr, releaseUsage)
			} else {
				fmt.Fprint(os.Stderr, usage)
			}
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	cmd, args := args[0], args[1:]
	if cmd == "release" {
		return runRelease(ctx, args, stdout, stderr, time.Now)
	}
	fs := flag.NewFlagSet("fleetd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "data directory (SQLite database, CA)")
	postgres := fs.String("postgres", "", "PostgreSQL DSN instead of SQLite (or $FLEETD_POSTGRES)")
	switch cmd {
	case "serve":
		deviceListen := fs.String("device-listen", server.DefaultDeviceListen, "device API address")
		consoleListen := fs.String("console-listen", server.DefaultConsoleListen, "console address")
		names := fs.String("server-name", "localhost", "comma-separated DNS names or IPs devices use to reach the device API")
		consoleCert := fs.String("console-cert", "", "PEM certificate for the console (HTTPS)")
		consoleKey := fs.String("console-key", "", "PEM key for the console")
		checkin := fs.Duration("checkin", time.Minute, "check-in interval asked of devices")
		level := fs.String("log-level", "info", "debug, info, warn or error")
		updates := fs.String("updates", "", "release repository (fleetd release) served to devices at "+updatesPath)
		tsKeys := fs.String("timestamp-keys", "", "directory holding the release repository's timestamp.key: keep timestamp.json fresh")
		tsCheck := fs.Duration("timestamp-check", 10*time.Minute, "how often to check whether timestamp.json needs re-signing")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *tsKeys != "" && *updates == "" {
			return fmt.Errorf("%w: -timestamp-keys needs -updates", errUsage)
		}
		if *tsCheck <= 0 {
			return fmt.Errorf("%w: -timestamp-check %v is not positive", errUsage, *tsCheck)
		}
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			return fmt.Errorf("%w: -log-level %q", errUsage, *level)
		}
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
		fresh, err := timestampKeeper(*updates, *tsKeys, *tsCheck, log)
		if err != nil {
			return err
		}
		srv, err := server.Open(ctx, serverOptions(server.Options{
			DataDir: *data, PostgresDSN: dsn(*postgres), DeviceListen: *deviceListen, ConsoleListen: *consoleListen,
			ServerNames: splitList(*names), ConsoleCert: *consoleCert, ConsoleKey: *consoleKey,
			CheckInInterval: *checkin, Logger: log,
		}, *updates))
		if err != nil {
			return err
		}
		return serveWith(ctx, srv.Run, fresh)
	case "useradd":
		username := fs.String("username", "", "account name")
		role := fs.String("role", string(store.RoleAdmin), "admin or viewer")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *username == "" {
			return fmt.Errorf("%w: -username is required", errUsage)
		}
		password, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		password = strings.TrimRight(password, "\r\n")
		if len(password) < 12 {
			return errors.New("the password must have at least 12 characters")
		}
		hash, err := console.HashPassword(password)
		if err != nil {
			return err
		}
		st, err := openStore(ctx, *data, dsn(*postgres))
		if err != nil {
			return err
		}
		defer st.Close()
		acct, err := st.CreateAccount(ctx, "fleetd useradd", *username, store.Role(*role), hash)
		if err != nil {
			return fmt.Errorf("create account %q: %w", *username, err)
		}
		fmt.Fprintf(stdout, "account %s created (%s)\n", acct.Username, acct.Role)
		return nil
	case "ca-fingerprint":
		if err := parse(fs, args); err != nil {
			return err
		}
		if *data == "" {
			return fmt.Errorf("%w: -data is required", errUsage)
		}
		authority, err := ca.Open(ca.Options{Dir: filepath.Join(*data, "ca")})
		if err != nil {
			return err
		}
		sum := sha256.Sum256(authority.Certificate().Raw)
		fmt.Fprintln(stdout, "sha256:"+hex.EncodeToString(sum[:]))
		return nil
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return nil
}

// dsn prefers the flag, then the environment, so a password in the DSN
// need not appear in the process list.
func dsn(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return os.Getenv("FLEETD_POSTGRES")
}

func openStore(ctx context.Context, data, postgres string) (*store.Store, error) {
	if postgres != "" {
		return store.Open(ctx, store.Options{PostgresDSN: postgres})
	}
	if data == "" {
		return nil, fmt.Errorf("%w: -data (or -postgres) is required", errUsage)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	return store.Open(ctx, store.Options{SQLitePath: filepath.Join(data, "fleet.db")})
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
