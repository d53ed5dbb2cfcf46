// File: test_kernel.h
// Test helper: writes tiny "kernels" — an ELF64 whose code prints to COM1 and resets through
// the i8042 (runs on any /dev/kvm, even PVM where Linux cannot boot), optionally with a PVH
// note, and a minimal bzImage header for loader tests.
#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace supermachine::testing {

// mov dx,0x3f8; mov al,'O'; out dx,al; mov al,'K'; out dx,al; mov al,'\n'; out dx,al;
// mov al,0xfe; out 0x64,al; hlt. The same bytes run in 32-bit (PVH) and 64-bit mode.
inline std::vector<uint8_t> PrintOkAndResetCode() {
  return {0x66, 0xba, 0xf8, 0x03, 0xb0, 'O', 0xee, 0xb0, 'K', 0xee,
          0xb0, 0x0a, 0xee, 0xb0, 0xfe, 0xe6, 0x64, 0xf4};
}

// An ELF at physical `load_addr` with `code`; with `pvh` a Xen PHYS32_ENTRY note pointing at it.
inline std::vector<uint8_t> MakeElfKernel(const std::vector<uint8_t>& code, uint64_t load_addr,
                                          bool pvh) {
  const uint16_t phnum = pvh ? 2 : 1;
  const size_t notes_off = sizeof(Elf64_Ehdr) + phnum * sizeof(Elf64_Phdr);
  std::vector<uint8_t> note;
  if (pvh) {
    Elf64_Nhdr nh{.n_namesz = 4, .n_descsz = 4, .n_type = 18};
    note.resize(sizeof(nh) + 8);
    std::memcpy(note.data(), &nh, sizeof(nh));
    std::memcpy(note.data() + sizeof(nh), "Xen", 4);
    const uint32_t entry = static_cast<uint32_t>(load_addr);
    std::memcpy(note.data() + sizeof(nh) + 4, &entry, 4);
  }
  const size_t code_off = (notes_off + note.size() + 15) & ~size_t{15};
  std::vector<uint8_t> out(std::max<size_t>(code_off + code.size(), 0x400), 0);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = load_addr;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = phnum;
  std::memcpy(out.data(), &eh, sizeof(eh));
  Elf64_Phdr load{.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = code_off,
                  .p_vaddr = load_addr, .p_paddr = load_addr, .p_filesz = code.size(),
                  .p_memsz = code.size(), .p_align = 0x1000};
  std::memcpy(out.data() + sizeof(eh), &load, sizeof(load));
  if (pvh) {
    Elf64_Phdr n{.p_type = PT_NOTE, .p_flags = PF_R, .p_offset = notes_off,
                 .p_filesz = note.size(), .p_memsz = note.size(), .p_align = 4};
    std::memcpy(out.data() + sizeof(eh) + sizeof(load), &n, sizeof(n));
    std::memcpy(out.data() + notes_off, note.data(), note.size());
  }
  std::memcpy(out.data() + code_off, code.data(), code.size());
  return out;
}

// Appends a symbol table holding one object symbol `name` of `size` bytes (plus .strtab and
// the section headers) to an ELF made by MakeElfKernel, as an unstripped vmlinux has.
inline void AppendObjectSymbol(std::vector<uint8_t>& elf, const std::string& name, uint64_t size) {
  std::string strtab = std::string(1, '\0') + name + std::string(1, '\0');
  Elf64_Sym syms[2] = {};
  syms[1].st_name = 1;
  syms[1].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT);
  syms[1].st_size = size;
  const uint64_t sym_off = (elf.size() + 7) & ~uint64_t{7};
  const uint64_t str_off = sym_off + sizeof(syms);
  const uint64_t sh_off = (str_off + strtab.size() + 7) & ~uint64_t{7};
  Elf64_Shdr sh[3] = {};
  sh[1] = {.sh_type = SHT_SYMTAB, .sh_offset = sym_off, .sh_size = sizeof(syms), .sh_link = 2,
           .sh_entsize = sizeof(Elf64_Sym)};
  sh[2] = {.sh_type = SHT_STRTAB, .sh_offset = str_off, .sh_size = strtab.size()};
  elf.resize(sh_off + sizeof(sh), 0);
  std::memcpy(elf.data() + sym_off, syms, sizeof(syms));
  std::memcpy(elf.data() + str_off, strtab.data(), strtab.size());
  std::memcpy(elf.data() + sh_off, sh, sizeof(sh));
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof(eh));
  eh.e_shoff = sh_off;
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = 3;
  std::memcpy(elf.data(), &eh, sizeof(eh));
}

// A bzImage-shaped file: 4 setup sectors + 1 boot sector, header fields for protocol `version`
// with `xloadflags`, then `payload`.
inline std::vector<uint8_t> MakeBzImage(uint16_t version, uint16_t xloadflags,
                                        const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out(size_t{5} * 512, 0);
  out[0x1f1] = 4;                                          // setup_sects
  out[0x1fe] = 0x55;
  out[0x1ff] = 0xaa;
  out[0x201] = 0x62;                                       // jump: header ends at 0x264
  std::memcpy(out.data() + 0x202, "HdrS", 4);
  std::memcpy(out.data() + 0x206, &version, 2);
  out[0x211] = 0x01;                                       // LOADED_HIGH
  std::memcpy(out.data() + 0x236, &xloadflags, 2);
  const uint32_t cmdline_size = 2047;
  std::memcpy(out.data() + 0x238, &cmdline_size, 4);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

inline void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace supermachine::testing
