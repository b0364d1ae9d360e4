// Package fusedev serves a FUSE file that answers the real Nitro Security Module
// ioctl, so that unmodified NSM clients (github.com/hf/nsm, our nsm package, any
// binary that opens /dev/nsm) run against a software NSM outside an enclave.
//
// # Protocol
//
// The one ioctl is NSM_IOCTL_RAW = _IOWR(0x0A, 0, 32 bytes) = 0xC0200A00. Its
// argument is a 32-byte message of four little-endian u64: request address,
// request length, response address, response length. For a restricted FUSE
// ioctl the kernel hands the server only those 32 bytes, so the device reads
// the request from the calling thread's memory with process_vm_readv, passes
// it to the Handler, writes the response with process_vm_writev and returns
// the message with the response length (offset 24) set to the number of bytes
// written; the kernel copies the message back to the caller (_IOWR).
//
// # Errors (the ioctl's errno)
//
//   - a command other than 0xC0200A00: ENOTTY (the in-tree driver answers
//     EINVAL; ENOTTY is the conventional "not this device's ioctl");
//   - a request longer than 4096 bytes: EMSGSIZE, as the real driver;
//   - request or response buffer not mapped in the caller: EFAULT;
//   - the caller's thread not visible from the server's pid namespace
//     (FUSE reports pid 0) or gone: ESRCH;
//   - a handler errno is returned unchanged;
//   - a handler response longer than 0x3000 bytes (the device maximum, a
//     handler bug): EIO.
//
// A response longer than the caller's buffer is truncated to the buffer and
// the length field set to the truncated length, exactly like the in-tree
// driver (raw->response.len = min(raw->response.len, resp->len)); the
// caller's decoder then fails on the cut CBOR, as it would on hardware.
//
// Requests are handled one at a time: the real driver serialises them with a
// mutex, so a slow (or latency-faulted) request delays the others here too.
//
// # Hazards
//
// Never serve the device from the process that makes the ioctls: a process
// that is both FUSE server and client can end up in uninterruptible sleep
// that even SIGKILL cannot end. Serve it from its own process (nsm-mock serve,
// or the fusetest helper for tests), preferably in its own mount namespace so
// nothing is left mounted if it dies. Mounting needs CAP_SYS_ADMIN and
// /dev/fuse; process_vm_readv/writev need ptrace rights over the caller.
// See docs/mock-device.md.
package fusedev
