// SPDX-License-Identifier: BSL-1.0
// executor_adaptor: the Asio executor plumbing shared by baton's context-carrying executors.
#pragma once

#include <boost/asio/execution.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>

#include <type_traits>
#include <utility>

namespace baton::detail {

/// What an executor adaptor only forwards to the executor it wraps: query(), and require() and
/// prefer(), whose answers are wrapped in the same adaptor again. Adaptor<Ex> derives from
/// executor_adaptor<Adaptor, Ex>, befriends it and defines execute() (how a job gets its
/// context), rewrap(ex2) (an Adaptor<Ex2> with the same context policy) and
/// same_context(other) (whether two adaptors run their jobs in the same context).
template <template <class> class Adaptor, class Executor>
class executor_adaptor {
 public:
  template <class Property>
  auto query(const Property& p) const
      -> decltype(boost::asio::query(std::declval<const Executor&>(), p)) {
    return boost::asio::query(ex_, p);
  }
  template <class Property>
  auto require(const Property& p) const
      -> Adaptor<std::decay_t<decltype(boost::asio::require(std::declval<const Executor&>(), p))>> {
    return self().rewrap(boost::asio::require(ex_, p));
  }
  template <class Property>
  auto prefer(const Property& p) const
      -> Adaptor<std::decay_t<decltype(boost::asio::prefer(std::declval<const Executor&>(), p))>> {
    return self().rewrap(boost::asio::prefer(ex_, p));
  }

  friend bool operator==(const Adaptor<Executor>& a, const Adaptor<Executor>& b) noexcept {
    return a.equals(b);
  }
  friend bool operator!=(const Adaptor<Executor>& a, const Adaptor<Executor>& b) noexcept {
    return !a.equals(b);
  }

 protected:
  explicit executor_adaptor(Executor ex) noexcept(std::is_nothrow_move_constructible_v<Executor>)
      : ex_(std::move(ex)) {}
  Executor ex_;

 private:
  const Adaptor<Executor>& self() const noexcept {
    return static_cast<const Adaptor<Executor>&>(*this);
  }
  bool equals(const Adaptor<Executor>& o) const noexcept {
    return ex_ == o.ex_ && self().same_context(o);
  }
};

}  // namespace baton::detail
