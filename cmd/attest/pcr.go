package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/attestd/attestd/pcr"
)

func init() {
	register(command{name: "pcr", summary: "compute PCR3 (role ARN), PCR4 (instance id), PCR8 (signing certificate) or a file's PCR", run: runPCR})
}

const pcrUsage = `usage: attest pcr [--role-arn ARN] [--instance-id ID] [--signing-cert CERT.pem] [--input FILE] [--json]

Computes the PCR values an enclave will report: PCR3 from the IAM role ARN of the parent
instance, PCR4 from the parent instance id, PCR8 from the EIF signing certificate (PEM or
DER), and for --input the value nitro-cli pcr --input gives (SHA-384(0^48 || SHA-384(file))).
At least one is required.
`

func runPCR(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pcr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	roleARN := fs.String("role-arn", "", "IAM role ARN of the parent instance (PCR3)")
	instanceID := fs.String("instance-id", "", "EC2 instance id of the parent instance (PCR4)")
	signingCert := fs.String("signing-cert", "", "EIF signing certificate, PEM or DER (PCR8)")
	input := fs.String("input", "", "file to measure as nitro-cli pcr --input does")
	jsonOut := fs.Bool("json", false, "print a JSON object (keys PCR3, PCR4, PCR8, PCR)")
	fs.Usage = func() { fmt.Fprint(stderr, pcrUsage); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	type line struct{ key, value, what string }
	var lines []line
	if *roleARN != "" {
		v, err := pcr.RoleARN(*roleARN)
		if err != nil {
			return usagef("--role-arn: %v", err)
		}
		lines = append(lines, line{"PCR3", pcr.Hex(v), "IAM role " + *roleARN})
	}
	if *instanceID != "" {
		v, err := pcr.InstanceID(*instanceID)
		if err != nil {
			return usagef("--instance-id: %v", err)
		}
		lines = append(lines, line{"PCR4", pcr.Hex(v), "parent instance " + *instanceID})
	}
	if *signingCert != "" {
		b, err := os.ReadFile(*signingCert)
		if err != nil {
			return err
		}
		v, err := pcr.SigningCertificate(b)
		if err != nil {
			return fmt.Errorf("%s: %w", *signingCert, err)
		}
		lines = append(lines, line{"PCR8", pcr.Hex(v), "signing certificate " + *signingCert})
	}
	if *input != "" {
		f, err := os.Open(*input)
		if err != nil {
			return err
		}
		v, err := pcr.MeasureReader(f)
		f.Close()
		if err != nil {
			return err
		}
		lines = append(lines, line{"PCR", pcr.Hex(v), "file " + *input})
	}
	if len(lines) == 0 {
		fs.Usage()
		return usagef("give at least one of --role-arn, --instance-id, --signing-cert, --input")
	}
	if *jsonOut {
		m := map[string]string{}
		for _, l := range lines {
			m[l.key] = l.value
		}
		out, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", out)
		return err
	}
	for _, l := range lines {
		fmt.Fprintf(stdout, "%-5s %s  %s\n", l.key, l.value, l.what)
	}
	return nil
}
