// Shows: request/reply from C++: a server whose handler hands each reply to a std::thread that answers later, and a client making blocking and callback requests.
// Run:   c++ -std=c++17 reqrep.cpp $(pkg-config --cflags --libs netchan) -o reqrep_cpp && ./reqrep_cpp
// Prints: "greet/ana -> hello, ana" and "greet/bo -> hello, bo" (callback), then "done".
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "netchan.h"

namespace {

struct Free {
    void operator()(netchan_endpoint *p) const { netchan_endpoint_free(p); }
    void operator()(netchan_service *p) const { netchan_service_free(p); }
    void operator()(netchan_bytes *p) const { netchan_bytes_free(p); }
    void operator()(char *p) const { netchan_string_free(p); }
};
template <typename T> using Owned = std::unique_ptr<T, Free>;

void check(netchan_result rc, const char *what) {
    if (rc != NETCHAN_RESULT_OK)
        throw std::runtime_error(std::string(what) + ": " + netchan_result_name(rc) + " (" +
                                 netchan_last_error() + ")");
}

// The server's work queue: the handler (a netchan thread) only enqueues.
struct Server {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<netchan_reply *, std::string>> work;
    bool stop = false;

    static void handle(void *context, const netchan_request *req, netchan_reply *reply) noexcept {
        auto *self = static_cast<Server *>(context);
        netchan_slice p = netchan_request_payload(req);
        std::lock_guard<std::mutex> g(self->mu);
        self->work.emplace_back(reply, std::string(reinterpret_cast<const char *>(p.data), p.len));
        self->cv.notify_one();
    }

    void run() { // the worker thread: answers later, from a thread of ours
        std::unique_lock<std::mutex> lock(mu);
        for (;;) {
            cv.wait(lock, [&] { return stop || !work.empty(); });
            if (work.empty()) return;
            auto [reply, name] = work.front();
            work.pop_front();
            lock.unlock();
            std::string text = "hello, " + name;
            netchan_reply_send(reply, reinterpret_cast<const uint8_t *>(text.data()), text.size());
            netchan_reply_free(reply);
            lock.lock();
        }
    }
};

// The outcome of a callback request.
struct Outcome {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    netchan_result result = NETCHAN_RESULT_OK;
    std::string text;

    static void on_result(void *context, netchan_result r, const uint8_t *reply, size_t len,
                          const char *error) noexcept {
        auto *self = static_cast<Outcome *>(context);
        std::lock_guard<std::mutex> g(self->mu);
        self->result = r;
        self->text = r == NETCHAN_RESULT_OK ? std::string(reinterpret_cast<const char *>(reply), len) : error;
        self->done = true;
        self->cv.notify_all();
    }
};

int run() {
    Server server;
    std::thread worker([&] { server.run(); });
    int status = 1;
    try {
        netchan_endpoint *raw = nullptr;
        check(netchan_endpoint_new(nullptr, &raw), "new");
        Owned<netchan_endpoint> server_ep(raw);
        netchan_request_handler h = {&server, Server::handle, nullptr};
        netchan_service *svc = nullptr;
        check(netchan_endpoint_serve(server_ep.get(), "greet/*", h, &svc), "serve");
        Owned<netchan_service> service(svc);
        char *a = nullptr;
        check(netchan_endpoint_listen(server_ep.get(), "tcp://127.0.0.1:0", &a), "listen");
        Owned<char> addr(a);

        check(netchan_endpoint_new(nullptr, &raw), "new");
        Owned<netchan_endpoint> client(raw);
        check(netchan_endpoint_connect(client.get(), addr.get(), nullptr), "connect");

        netchan_bytes *b = nullptr;
        check(netchan_endpoint_request_blocking(client.get(), "greet/ana", reinterpret_cast<const uint8_t *>("ana"), 3,
                                                5000, &b),
              "request");
        Owned<netchan_bytes> reply(b);
        netchan_slice s = netchan_bytes_data(reply.get());
        std::printf("greet/ana -> %.*s\n", static_cast<int>(s.len), reinterpret_cast<const char *>(s.data));

        Outcome o;
        netchan_result_callback cb = {&o, Outcome::on_result, nullptr};
        check(netchan_endpoint_request(client.get(), "greet/bo", reinterpret_cast<const uint8_t *>("bo"), 2, 5000, cb),
              "request");
        std::unique_lock<std::mutex> lock(o.mu);
        o.cv.wait(lock, [&] { return o.done; });
        check(o.result, "callback request");
        std::printf("greet/bo -> %s\n", o.text.c_str());
        std::printf("done\n");
        status = 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "error: %s\n", e.what());
    }
    {
        std::lock_guard<std::mutex> g(server.mu);
        server.stop = true;
        server.cv.notify_one();
    }
    worker.join();
    return status;
}

} // namespace

int main() {
    int status = run();
    netchan_runtime_shutdown(5000);
    return status;
}
