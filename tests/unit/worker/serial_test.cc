// File: serial_test.cc
// 8250 UART: what Linux's 8250 driver probes and relies on.
#include "worker/devices/legacy/serial.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/unit/worker/fake_irq.h"

namespace supermachine::devices {
namespace {

class StringOutput : public SerialOutput {
 public:
  void Write(uint8_t b) override { text.push_back(static_cast<char>(b)); }
  std::string text;
};

TEST(Serial, TransmitsBytesToTheOutput) {
  testing::CountingIrq irq;
  StringOutput out;
  Serial s(&irq, &out);
  s.Write(0, 'h');
  s.Write(0, 'i');
  EXPECT_EQ(out.text, "hi");
}

TEST(Serial, LineStatusAlwaysReportsTransmitterEmpty) {
  testing::CountingIrq irq;
  StringOutput out;
  Serial s(&irq, &out);
  EXPECT_EQ(s.Read(5) & 0x60, 0x60);
}

TEST(Serial, IerKeepsTheLowFourBitsAsAutoconfigExpects) {
  testing::CountingIrq irq;
  StringOutput out;
  Serial s(&irq, &out);
  s.Write(1, 0xff);
  EXPECT_EQ(s.Read(1), 0x0f);
}

TEST(Serial, LoopbackMirrorsModemControlIntoModemStatus) {
  testing::CountingIrq irq;
  StringOutput out;
  Serial s(&irq, &out);
  s.Write(4, 0x10 | 0x0a);  // LOOP | RTS | OUT2, as 8250 autoconfig writes.
  EXPECT_EQ(s.Read(6) & 0xf0, 0x90);
}

TEST(Serial, EnablingThrInterruptRaisesItAndIirReportsIt) {
  testing::CountingIrq irq;
  StringOutput out;
  Serial s(&irq, &out);
  s.Write(1, 0x02);
  EXPECT_EQ(irq.count, 1);
  EXPECT_EQ(s.Read(2) & 0x0f, 0x02);
  EXPECT_EQ(s.Read(2) & 0x0f, 0x01);  // Reading IIR acknowledged it.
}

TEST(Serial, InputRaisesDataReadyAndIsReadBack) {
  testing::CountingIrq irq;
  StringOutput out;
  Serial s(&irq, &out);
  s.Write(1, 0x01);
  const uint8_t in[] = {'x'};
  EXPECT_EQ(s.EnqueueInput(in), 1u);
  EXPECT_EQ(irq.count, 1);
  EXPECT_EQ(s.Read(5) & 0x01, 0x01);
  EXPECT_EQ(s.Read(0), 'x');
  EXPECT_EQ(s.Read(5) & 0x01, 0x00);
}

TEST(Serial, InputBeyondTheFifoIsRefused) {
  testing::CountingIrq irq;
  StringOutput out;
  Serial s(&irq, &out);
  std::string big(Serial::kInputFifo + 10, 'a');
  EXPECT_EQ(s.EnqueueInput(absl::Span<const uint8_t>(
                reinterpret_cast<const uint8_t*>(big.data()), big.size())),
            Serial::kInputFifo);
}

TEST(Serial, DivisorLatchDoesNotTransmit) {
  testing::CountingIrq irq;
  StringOutput out;
  Serial s(&irq, &out);
  s.Write(3, 0x80);  // DLAB
  s.Write(0, 0x01);
  s.Write(3, 0x03);
  EXPECT_EQ(out.text, "");
}

}  // namespace
}  // namespace supermachine::devices
