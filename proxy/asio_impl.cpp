// Separate compilation of Asio, Asio SSL and Beast: compiled once here, not in every translation unit.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
