// File: kernel_loader.cc
// ELF vmlinux and bzImage loading.
#include "worker/arch/x86_64/kernel_loader.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/arch/x86_64/boot_params.h"
#include "worker/arch/x86_64/layout.h"
#include "worker/base/status_macros.h"

namespace supermachine::arch {
namespace {

struct KernelFile {
  base::UniqueFd fd;
  uint64_t size = 0;
};

absl::StatusOr<KernelFile> OpenKernel(const std::string& path) {
  KernelFile f;
  f.fd = base::UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f.fd.valid()) {
    return base::ErrnoToStatus(errno, absl::StrCat("kernel '", path, "'"));
  }
  struct stat st;
  if (fstat(f.fd.get(), &st) != 0) {
    return base::ErrnoToStatus(errno, absl::StrCat("kernel '", path, "': stat"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("kernel '", path, "': not a regular file"));
  }
  f.size = static_cast<uint64_t>(st.st_size);
  return f;
}

// Reads exactly `len` bytes at `offset` into `out`, refusing ranges past the end of the file.
absl::Status ReadExact(const KernelFile& f, uint64_t offset, void* out, uint64_t len,
                       const std::string& path) {
  if (offset > f.size || len > f.size - offset) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kernel '%s': truncated (needs bytes [%u, +%u) of a %u-byte file)", path, offset, len,
        f.size));
  }
  auto* p = static_cast<uint8_t*>(out);
  while (len > 0) {
    ssize_t n = pread(f.fd.get(), p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return base::ErrnoToStatus(errno, absl::StrCat("kernel '", path, "': read"));
    }
    if (n == 0) {
      return absl::InvalidArgumentError(absl::StrCat("kernel '", path, "': unexpected EOF"));
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    len -= static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

bool IsElf(const uint8_t* head) { return std::memcmp(head, ELFMAG, SELFMAG) == 0; }

bool IsBzImage(const KernelFile& f, const std::string& path) {
  uint32_t magic = 0;
  return ReadExact(f, zp::kHeaderMagic, &magic, 4, path).ok() && magic == zp::kHdrSMagic;
}

absl::StatusOr<Elf64_Ehdr> ReadElfHeader(const KernelFile& f, const std::string& path) {
  Elf64_Ehdr eh;
  SM_RETURN_IF_ERROR(ReadExact(f, 0, &eh, sizeof(eh), path));
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_machine != EM_X86_64) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel '", path, "': ELF but not a 64-bit little-endian x86_64 image"));
  }
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel '", path, "': unusable ELF program headers"));
  }
  return eh;
}

// Finds XEN_ELFNOTE_PHYS32_ENTRY in the PT_NOTE segments; 0 when absent.
absl::StatusOr<uint64_t> FindPvhEntry(const KernelFile& f, const std::vector<Elf64_Phdr>& phdrs,
                                      const std::string& path) {
  for (const Elf64_Phdr& ph : phdrs) {
    if (ph.p_type != PT_NOTE) {
      continue;
    }
    // Notes are small; refuse anything that would make us allocate a lot.
    if (ph.p_filesz > (1u << 20)) {
      return absl::InvalidArgumentError(absl::StrCat("kernel '", path, "': oversized PT_NOTE"));
    }
    std::vector<uint8_t> notes(ph.p_filesz);
    SM_RETURN_IF_ERROR(ReadExact(f, ph.p_offset, notes.data(), notes.size(), path));
    size_t off = 0;
    while (off + sizeof(Elf64_Nhdr) <= notes.size()) {
      Elf64_Nhdr nh;
      std::memcpy(&nh, notes.data() + off, sizeof(nh));
      const size_t name_off = off + sizeof(nh);
      const size_t desc_off = name_off + ((nh.n_namesz + 3u) & ~3u);
      const size_t next = desc_off + ((nh.n_descsz + 3u) & ~3u);
      if (desc_off > notes.size() || next > notes.size() || next <= off) {
        break;
      }
      if (nh.n_type == kXenElfNotePhys32Entry && nh.n_namesz == 4 &&
          std::memcmp(notes.data() + name_off, "Xen", 4) == 0 && nh.n_descsz >= 4) {
        uint32_t entry;
        std::memcpy(&entry, notes.data() + desc_off, 4);
        return entry;
      }
      off = next;
    }
  }
  return 0;
}

// The kernel's command-line buffer size from the ELF symbol table: the size of the
// `boot_command_line` object is COMMAND_LINE_SIZE (NUL included). vmlinux has no boot-protocol
// header to state it, and our kernel raises it above x86's 2048 to fit one virtio-mmio disk per
// image layer. 0 when the image is stripped or has no such symbol (the caller then assumes
// the stock 2048).
absl::StatusOr<uint32_t> FindCmdlineBufferSize(const KernelFile& f, const Elf64_Ehdr& eh,
                                               const std::string& path) {
  if (eh.e_shoff == 0 || eh.e_shnum == 0 || eh.e_shentsize != sizeof(Elf64_Shdr)) {
    return 0;
  }
  std::vector<Elf64_Shdr> shdrs(eh.e_shnum);
  SM_RETURN_IF_ERROR(
      ReadExact(f, eh.e_shoff, shdrs.data(), shdrs.size() * sizeof(Elf64_Shdr), path));
  // A kernel's symbol and string tables are a few MiB; refuse to allocate more than this.
  constexpr uint64_t kMaxTableBytes = 64ull << 20;
  for (const Elf64_Shdr& sh : shdrs) {
    if (sh.sh_type != SHT_SYMTAB || sh.sh_entsize != sizeof(Elf64_Sym) ||
        sh.sh_link >= shdrs.size()) {
      continue;
    }
    const Elf64_Shdr& strtab = shdrs[sh.sh_link];
    if (sh.sh_size > kMaxTableBytes || strtab.sh_size > kMaxTableBytes) {
      return absl::InvalidArgumentError(absl::StrCat("kernel '", path, "': oversized symbol table"));
    }
    std::vector<Elf64_Sym> syms(sh.sh_size / sizeof(Elf64_Sym));
    SM_RETURN_IF_ERROR(ReadExact(f, sh.sh_offset, syms.data(), syms.size() * sizeof(Elf64_Sym), path));
    std::vector<char> names(strtab.sh_size);
    SM_RETURN_IF_ERROR(ReadExact(f, strtab.sh_offset, names.data(), names.size(), path));
    static constexpr char kSymbol[] = "boot_command_line";
    for (const Elf64_Sym& sym : syms) {
      if (ELF64_ST_TYPE(sym.st_info) != STT_OBJECT || sym.st_name >= names.size() ||
          names.size() - sym.st_name < sizeof(kSymbol) ||
          std::memcmp(names.data() + sym.st_name, kSymbol, sizeof(kSymbol)) != 0) {
        continue;
      }
      // Implausible sizes (corrupt image) are ignored rather than trusted.
      if (sym.st_size < 256 || sym.st_size > (1u << 20)) {
        return 0;
      }
      return static_cast<uint32_t>(sym.st_size);
    }
  }
  return 0;
}

absl::StatusOr<LoadedKernel> LoadElf(const KernelFile& f, const std::string& path,
                                     const memory::GuestMemory& mem, bool prefer_pvh) {
  SM_ASSIGN_OR_RETURN(Elf64_Ehdr eh, ReadElfHeader(f, path));
  std::vector<Elf64_Phdr> phdrs(eh.e_phnum);
  SM_RETURN_IF_ERROR(
      ReadExact(f, eh.e_phoff, phdrs.data(), phdrs.size() * sizeof(Elf64_Phdr), path));
  LoadedKernel k;
  bool any_load = false;
  for (const Elf64_Phdr& ph : phdrs) {
    if (ph.p_type != PT_LOAD) {
      continue;
    }
    any_load = true;
    if (ph.p_filesz > ph.p_memsz) {
      return absl::InvalidArgumentError(
          absl::StrCat("kernel '", path, "': segment file size exceeds its memory size"));
    }
    if (ph.p_paddr < kHighMemStart) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kernel '%s': segment at 0x%x overlaps the boot structures below 1 MiB", path,
          ph.p_paddr));
    }
    auto dst = mem.HostSlice(ph.p_paddr, ph.p_memsz);
    if (!dst.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kernel '%s': segment [0x%x, +0x%x) does not fit in guest memory of %u MiB; give "
          "the VM more memory",
          path, ph.p_paddr, ph.p_memsz, mem.total_size() >> 20));
    }
    mem.Prefault(ph.p_paddr, ph.p_filesz);
    SM_RETURN_IF_ERROR(ReadExact(f, ph.p_offset, *dst, ph.p_filesz, path));
    // The rest (bss) is already zero: guest memory starts as a fresh memfd.
    k.end = std::max<uint64_t>(k.end, ph.p_paddr + ph.p_memsz);
  }
  if (!any_load) {
    return absl::InvalidArgumentError(absl::StrCat("kernel '", path, "': no PT_LOAD segment"));
  }
  SM_ASSIGN_OR_RETURN(uint64_t pvh_entry, FindPvhEntry(f, phdrs, path));
  SM_ASSIGN_OR_RETURN(uint32_t cmdline_buffer, FindCmdlineBufferSize(f, eh, path));
  // cmdline_limit excludes the NUL, as bzImage's cmdline_size does.
  k.cmdline_limit = cmdline_buffer != 0 ? cmdline_buffer - 1 : 0;
  if (prefer_pvh && pvh_entry != 0) {
    k.entry_kind = EntryKind::kPvh;
    k.entry = pvh_entry;
    k.format = "ELF vmlinux (PVH entry)";
  } else {
    // vmlinux's e_entry is startup_64's physical address, entered in long mode.
    k.entry_kind = EntryKind::kLinux64;
    k.entry = eh.e_entry;
    k.format = "ELF vmlinux (64-bit entry)";
  }
  if (!mem.IsValidRange(k.entry, 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("kernel '%s': entry 0x%x outside guest memory", path, k.entry));
  }
  return k;
}

absl::StatusOr<LoadedKernel> LoadBzImage(const KernelFile& f, const std::string& path,
                                         const memory::GuestMemory& mem) {
  uint8_t head[zp::kSetupHeaderEnd];
  SM_RETURN_IF_ERROR(ReadExact(f, 0, head, sizeof(head), path));
  uint16_t version;
  std::memcpy(&version, head + zp::kVersion, 2);
  uint16_t xloadflags;
  std::memcpy(&xloadflags, head + zp::kXLoadFlags, 2);
  // 2.12 added xloadflags, whose XLF_KERNEL_64 bit promises the 64-bit entry at +0x200.
  if (version < 0x020c || (xloadflags & zp::kXlfKernel64) == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kernel '%s': bzImage boot protocol %x.%02x without a 64-bit entry point "
        "(need >= 2.12 with XLF_KERNEL_64)",
        path, version >> 8, version & 0xff));
  }
  if ((head[zp::kLoadFlags] & zp::kLoadedHigh) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel '", path, "': zImage (not loaded high) is not supported"));
  }
  uint32_t setup_sects = head[zp::kSetupSects];
  if (setup_sects == 0) {
    setup_sects = 4;  // Boot protocol: 0 means 4.
  }
  const uint64_t kernel_offset = (static_cast<uint64_t>(setup_sects) + 1) * 512;
  if (kernel_offset >= f.size) {
    return absl::InvalidArgumentError(absl::StrCat("kernel '", path, "': truncated bzImage"));
  }
  const uint64_t kernel_size = f.size - kernel_offset;
  uint32_t init_size;
  std::memcpy(&init_size, head + zp::kInitSize, 4);
  // The decompressor needs init_size bytes from the load address to work in place.
  const uint64_t needed = std::max<uint64_t>(kernel_size, init_size);
  auto dst = mem.HostSlice(kHighMemStart, needed);
  if (!dst.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kernel '%s': bzImage needs %u MiB from 1 MiB to decompress; give the VM more memory",
        path, (needed >> 20) + 1));
  }
  mem.Prefault(kHighMemStart, kernel_size);
  SM_RETURN_IF_ERROR(ReadExact(f, kernel_offset, *dst, kernel_size, path));

  LoadedKernel k;
  k.entry_kind = EntryKind::kLinux64;
  k.entry = kHighMemStart + 0x200;  // 64-bit entry: startup_64 of the decompressor.
  k.end = kHighMemStart + needed;
  // The setup header ends at 0x202 + the byte at 0x201 (the jump offset), per boot.rst.
  size_t header_end = std::min<size_t>(0x202 + head[0x201], zp::kSetupHeaderEnd);
  k.setup_header.assign(head + zp::kSetupHeader, head + header_end);
  std::memcpy(&k.cmdline_limit, head + zp::kCmdlineSize, 4);
  k.format = "bzImage";
  return k;
}

}  // namespace

absl::StatusOr<std::string> ProbeKernel(const std::string& path) {
  SM_ASSIGN_OR_RETURN(KernelFile f, OpenKernel(path));
  uint8_t head[SELFMAG] = {};
  if (f.size < 0x300) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kernel '", path, "': ", f.size, " bytes is too small to be a kernel image"));
  }
  SM_RETURN_IF_ERROR(ReadExact(f, 0, head, sizeof(head), path));
  if (IsElf(head)) {
    SM_RETURN_IF_ERROR(ReadElfHeader(f, path).status());
    return std::string("ELF vmlinux");
  }
  if (IsBzImage(f, path)) {
    return std::string("bzImage");
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "kernel '", path, "': neither an ELF vmlinux nor a bzImage (no ELF or HdrS magic)"));
}

absl::StatusOr<LoadedKernel> LoadKernel(const std::string& path, const memory::GuestMemory& mem,
                                        bool prefer_pvh) {
  SM_RETURN_IF_ERROR(ProbeKernel(path).status());
  SM_ASSIGN_OR_RETURN(KernelFile f, OpenKernel(path));
  uint8_t head[SELFMAG];
  SM_RETURN_IF_ERROR(ReadExact(f, 0, head, sizeof(head), path));
  if (IsElf(head)) {
    return LoadElf(f, path, mem, prefer_pvh);
  }
  return LoadBzImage(f, path, mem);
}

}  // namespace supermachine::arch
