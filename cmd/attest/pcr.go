package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/pcr"
)

func init() {
	register(cli.Command{Name: "pcr", Summary: "compute PCR3 (role ARN), PCR4 (instance id), PCR8 (signing certificate) or a file's PCR", Run: runPCR})
}

const pcrUsage = `usage: attest pcr [--role-arn ARN] [--instance-id ID] [--signing-cert CERT.pem] [--input FILE] [--json]

Computes the PCR values an enclave will report: PCR3 from the IAM role ARN of the parent
instance, PCR4 from the parent instance id, PCR8 from the EIF signing certificate (PEM or
DER), and for --input the value nitro-cli pcr --input gives (SHA-384(0^48 || SHA-384(file))).
At least one is required. --signing-certificate is nitro-cli's name for --signing-cert.

Exit status: 0 computed, 1 an input file was read and rejected, 2 usage error (including
a file that cannot be opened).
`

// maxSigningCert bounds --signing-cert (a PEM certificate is a few KiB).
const maxSigningCert = 1 << 20

func runPCR(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pcr")
	roleARN := fs.String("role-arn", "", "IAM role `ARN` of the parent instance (PCR3)")
	instanceID := fs.String("instance-id", "", "EC2 instance `ID` of the parent instance (PCR4)")
	var signingCert string
	fs.StringVar(&signingCert, "signing-cert", "", "EIF signing certificate `FILE`, PEM or DER (PCR8)")
	fs.StringVar(&signingCert, "signing-certificate", "", "nitro-cli's name for --signing-cert (`FILE`)")
	input := fs.String("input", "", "`FILE` to measure as nitro-cli pcr --input does")
	jsonOut := fs.Bool("json", false, "print a JSON object (keys PCR3, PCR4, PCR8, PCR)")
	pos, err := parseArgs(fs, pcrUsage, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return cli.Usagef("unexpected argument %q", pos[0])
	}
	if err := oneOfAliases(fs, "signing-cert", "signing-certificate"); err != nil {
		return err
	}
	type line struct{ key, value, what string }
	var lines []line
	if *roleARN != "" {
		v, err := pcr.RoleARN(*roleARN)
		if err != nil {
			return cli.Usagef("--role-arn: %v", err)
		}
		lines = append(lines, line{"PCR3", pcr.Hex(v), "IAM role " + *roleARN})
	}
	if *instanceID != "" {
		v, err := pcr.InstanceID(*instanceID)
		if err != nil {
			return cli.Usagef("--instance-id: %v", err)
		}
		lines = append(lines, line{"PCR4", pcr.Hex(v), "parent instance " + *instanceID})
	}
	if signingCert != "" {
		b, err := readInput("--signing-cert", signingCert, maxSigningCert)
		if err != nil {
			return err
		}
		v, err := pcr.SigningCertificate(b)
		if err != nil {
			return rejectf(checkInput, "--signing-cert %s: %w", signingCert, err)
		}
		lines = append(lines, line{"PCR8", pcr.Hex(v), "signing certificate " + signingCert})
	}
	if *input != "" {
		f, err := openInput("--input", *input)
		if err != nil {
			return err
		}
		v, err := pcr.MeasureReader(f)
		f.Close()
		if err != nil {
			return cli.Usagef("--input %s: %v", *input, pathErr(err))
		}
		lines = append(lines, line{"PCR", pcr.Hex(v), "file " + *input})
	}
	if len(lines) == 0 {
		return cli.Usagef("give at least one of --role-arn, --instance-id, --signing-cert, --input")
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
