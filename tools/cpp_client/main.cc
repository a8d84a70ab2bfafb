// Minimal engine-side client of the bugdet detection service.
//
// Sends one raw RGBA frame (as an engine reads back its framebuffer: 4 bytes per pixel, rows
// padded to a 256-byte stride) to bugdet.v1.Detection/Detect and prints the result, one line
// per bug type, then a summary line. Usage:
//
//   bugdet_detect_client HOST:PORT WIDTH HEIGHT [RGBA_FILE] [--token TOKEN]
//
// Without RGBA_FILE a test pattern is sent (a gradient with a magenta/black checkerboard patch,
// the classic missing-texture look). RGBA_FILE holds WIDTH*HEIGHT*4 tightly packed bytes.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bugdet_api/v1/detection.grpc.pb.h"

namespace {

constexpr uint32_t kStrideAlignment = 256;

uint32_t AlignedStride(uint32_t width) {
  const uint32_t row = width * 4;
  return (row + kStrideAlignment - 1) / kStrideAlignment * kStrideAlignment;
}

// Copies tightly packed RGBA rows into a padded buffer, as a GPU readback would deliver them.
std::string PadRows(const std::vector<uint8_t>& packed, uint32_t width, uint32_t height, uint32_t stride) {
  std::string out(static_cast<size_t>(stride) * height, '\0');
  for (uint32_t y = 0; y < height; ++y) {
    std::copy_n(packed.begin() + static_cast<size_t>(y) * width * 4, width * 4, out.begin() + static_cast<size_t>(y) * stride);
  }
  return out;
}

std::vector<uint8_t> TestPattern(uint32_t width, uint32_t height) {
  std::vector<uint8_t> rgba(static_cast<size_t>(width) * height * 4);
  const uint32_t patch = std::max<uint32_t>(8, std::min(width, height) / 4);
  for (uint32_t y = 0; y < height; ++y) {
    for (uint32_t x = 0; x < width; ++x) {
      uint8_t* p = &rgba[(static_cast<size_t>(y) * width + x) * 4];
      p[0] = static_cast<uint8_t>(80 + 100 * x / width);
      p[1] = static_cast<uint8_t>(150 + 60 * y / height);
      p[2] = 200;
      p[3] = 255;
      if (x >= width / 3 && x < width / 3 + patch && y >= height / 3 && y < height / 3 + patch) {
        const bool magenta = ((x / 4) + (y / 4)) % 2 == 1;
        p[0] = magenta ? 255 : 0;
        p[1] = 0;
        p[2] = magenta ? 255 : 0;
      }
    }
  }
  return rgba;
}

int Usage() {
  std::cerr << "usage: bugdet_detect_client HOST:PORT WIDTH HEIGHT [RGBA_FILE] [--token TOKEN]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string token;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--token" && i + 1 < args.size()) {
      token = args[i + 1];
      args.erase(args.begin() + i, args.begin() + i + 2);
      break;
    }
  }
  if (args.size() < 3 || args.size() > 4) return Usage();
  const std::string address = args[0];
  const long width = std::strtol(args[1].c_str(), nullptr, 10);
  const long height = std::strtol(args[2].c_str(), nullptr, 10);
  if (width <= 0 || height <= 0 || width > 8192 || height > 8192) return Usage();

  std::vector<uint8_t> packed;
  if (args.size() == 4) {
    std::ifstream in(args[3], std::ios::binary);
    packed.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (packed.size() != static_cast<size_t>(width) * height * 4) {
      std::cerr << "error: " << args[3] << " has " << packed.size() << " bytes, expected " << width * height * 4 << "\n";
      return 2;
    }
  } else {
    packed = TestPattern(width, height);
  }

  const uint32_t stride = AlignedStride(width);
  bugdet::v1::DetectRequest request;
  bugdet::v1::Frame* frame = request.add_frames();
  frame->set_id("cpp-frame-0");
  bugdet::v1::RawImage* raw = frame->mutable_raw();
  raw->set_width(width);
  raw->set_height(height);
  raw->set_stride(stride);
  raw->set_format(bugdet::v1::RGBA8);
  raw->set_data(PadRows(packed, width, height, stride));
  frame->mutable_metadata()->set_session("cpp-client");
  frame->mutable_metadata()->set_level("test");

  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = bugdet::v1::Detection::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  bugdet::v1::DetectResponse response;
  const grpc::Status status = stub->Detect(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "error: Detect failed: " << status.error_code() << " " << status.error_message() << "\n";
    return 1;
  }
  for (const auto& result : response.results()) {
    for (const auto& score : result.scores()) {
      std::cout << "bug_type=" << score.bug_type() << " score=" << score.score() << " is_bug=" << (score.is_bug() ? 1 : 0)
                << " threshold=" << score.threshold() << "\n";
    }
    std::cout << "frame=" << result.id() << " is_bug=" << (result.is_bug() ? 1 : 0) << " model=" << result.model_name()
              << " version=" << result.model_version() << " stride=" << stride << "\n";
  }
  return 0;
}
