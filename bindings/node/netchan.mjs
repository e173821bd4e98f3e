// ESM entry point: the same objects as the CommonJS entry (netchan.js).
import netchan from './netchan.js'

export const { Endpoint, Publisher, Subscription, Service, Request, Message, Stream, StreamService, StreamRequest, codes, pack, unpack, version } = netchan
export default netchan
